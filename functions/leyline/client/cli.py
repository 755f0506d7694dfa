"""`leyline`: turn an image into a video with a Leyline API, look up a task, cancel or delete it, list your
history; sign up, confirm, sign in and out where the API has accounts.

Exit codes: 0 done · 1 the task ended without a video (FAILURE, or CANCELLED) · 2 bad command line · 3 local
file problem (image missing, unreadable, not PNG/JPEG/WebP, too big; output not writable) · 4 API, storage or
sign-in service unreachable · 5 the API answered with an error (e.g. TASK_NOT_FOUND, TASK_FINISHED,
ACCOUNTS_OFF) · 6 not signed in (`leyline login`) · 7 session expired or signed out elsewhere (`leyline login`
again) · 8 wrong email or password · 9 account not confirmed (`leyline confirm`) · 10 the sign-in service
refused otherwise (email taken, password too weak, wrong code) · 70 a bug in this client · 130 interrupted
(Ctrl-C; generate cancels the task it created).
Errors are one line on stderr; with --json, stdout holds exactly one JSON document, whatever happened.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leyline.client.accounts import Cognito, CognitoConfig, Credentials, Session, SessionStore
from leyline.client.api import HEAD_BYTES, LeylineClient, new_idempotency_key, sniff_image_type
from leyline.client.errors import (
    AccountsOff,
    ApiError,
    ClientError,
    ExitCode,
    Interrupted,
    LocalFileError,
    NotSignedIn,
    SessionExpired,
    TaskFailed,
    UsageError,
)
from leyline.client.progress import ProgressLine, duration, percent_of
from leyline.media.formats import ACCEPTED_NAMES
from leyline.states import FINAL_STATES, TaskState

DEFAULT_API = "http://localhost:8080"
CANCEL_TIMEOUT = 10.0
"""Seconds a Ctrl-C'd generate waits for the API to take its task back: the person wants to leave."""
HISTORY_PAGE = 100
"""The most tasks GET /tasks gives in one page."""


@dataclass(frozen=True)
class ImageFile:
    path: Path
    size: int
    content_type: str


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: dict[str, Any] = args.command(args)
    except KeyboardInterrupt:
        return _fail(args, Interrupted())
    except ClientError as exc:
        return _fail(args, exc)
    except Exception as exc:  # a bug: still one line, never a traceback
        return _fail(args, ClientError(f"unexpected error ({type(exc).__name__}: {exc})", "CLIENT_BUG"))
    if args.json:
        print(json.dumps(result))
    return ExitCode.OK


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api",
        type=_api_url,
        metavar="URL",
        default=os.environ.get("LEYLINE_API_URL") or DEFAULT_API,
        help=f"the API's base URL (default: $LEYLINE_API_URL, else {DEFAULT_API})",
    )
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout, for scripts")
    parser = argparse.ArgumentParser(
        prog="leyline",
        description="Turn an image into a video.",
        epilog=_exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    generate = commands.add_parser("generate", parents=[common], help="upload an image and download its video")
    generate.add_argument("image", type=Path, metavar="IMAGE", help=f"a {ACCEPTED_NAMES} file")
    generate.add_argument(
        "-o", "--output", type=Path, metavar="OUT.mp4", help="where to save the video (default: IMAGE's name + .mp4)"
    )
    generate.add_argument(
        "--email",
        dest="notify_email",
        action="store_true",
        help="also email you when it ends, at your account's verified address (accounts)",
    )
    generate.set_defaults(command=_generate)
    status = commands.add_parser("status", parents=[common], help="print a task's status")
    status.add_argument("task_id", metavar="TASK_ID")
    status.set_defaults(command=_status)
    cancel = commands.add_parser("cancel", parents=[common], help="stop a task that is waiting or running")
    cancel.add_argument("task_id", metavar="TASK_ID")
    cancel.set_defaults(command=_cancel)
    delete = commands.add_parser(
        "delete", parents=[common], help="cancel a task if it is still going, then delete its image and video"
    )
    delete.add_argument("task_id", metavar="TASK_ID")
    delete.set_defaults(command=_delete)
    history = commands.add_parser("history", parents=[common], help="list your tasks, newest first (accounts)")
    history.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="how many tasks to list (default: 20)"
    )
    history.add_argument("--cursor", metavar="CURSOR", help="go on from where a previous --json listing stopped")
    history.set_defaults(command=_history)
    _account_commands(commands, common)
    return parser


def _account_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    email = argparse.ArgumentParser(add_help=False)
    email.add_argument("--email", metavar="EMAIL", help="your email address (asked for if left out)")
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line (for scripts)"
    )
    signup = commands.add_parser("signup", parents=[common, email, password], help="create an account")
    signup.set_defaults(command=_signup)
    confirm = commands.add_parser(
        "confirm", parents=[common, email], help="confirm a new account with the code sent to its email"
    )
    confirm.add_argument("--code", metavar="CODE", help="the confirmation code (asked for if left out)")
    confirm.set_defaults(command=_confirm)
    login = commands.add_parser("login", parents=[common, email, password], help="sign in (kept until logout)")
    login.set_defaults(command=_login)
    logout = commands.add_parser("logout", parents=[common], help="sign out, here and on every other device")
    logout.set_defaults(command=_logout)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def _exit_codes() -> str:
    return (__doc__ or "").split("\n\n", 1)[1]


def _api_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text.rstrip("/")


def _fail(args: argparse.Namespace, exc: ClientError) -> int:
    if args.json:
        print(json.dumps(exc.to_json()))
    print(f"leyline: error: {exc.message}", file=sys.stderr)
    return exc.exit_code


def _generate(args: argparse.Namespace) -> dict[str, Any]:
    image = _inspect_image(args.image)
    target = _output_path(args.output, image.path)
    progress = ProgressLine(sys.stderr)
    try:
        final = _make_video(_client(args), image, target, progress, notify_email=args.notify_email)
    finally:
        progress.end()
    if not args.json:
        print(f"video saved to {target}")
    return {**final, "output": str(target.resolve())}


def _make_video(
    client: LeylineClient, image: ImageFile, target: Path, progress: ProgressLine, *, notify_email: bool = False
) -> dict[str, Any]:
    try:
        # One key for this submit and its retries: a retry after a lost answer gets the same task, not a second.
        ticket = client.create_upload(
            image.content_type, image.size, idempotency_key=new_idempotency_key(), notify_email=notify_email
        )
    except ApiError as exc:
        if exc.code == "FILE_TOO_LARGE":  # the API judged the declared size: still the local file's problem
            raise LocalFileError(f"{image.path}: {exc.message}", exc.code) from exc
        raise
    task_id = ticket["task_id"]
    print(f"task {task_id}", file=sys.stderr)  # so a person can come back to it with `leyline status`
    final: dict[str, Any] | None = None
    try:
        data = _read(image.path)
        client.upload(
            ticket, data, image.content_type, lambda done, total: progress.show("uploading", percent_of(done, total))
        )
        final = client.wait(task_id, lambda status: _show_status(progress, status))
        if final["state"] != TaskState.SUCCESS:  # FAILURE, CANCELLED (by someone else), or any other end
            raise TaskFailed(final)
        client.download(task_id, target, lambda done, total: progress.show("downloading", percent_of(done, total)))
    except KeyboardInterrupt:
        raise _interrupted(client, task_id, video_made=final is not None) from None
    return final


def _interrupted(client: LeylineClient, task_id: str, *, video_made: bool) -> Interrupted:
    """Ctrl-C: the person no longer wants this video, so the task is taken back rather than left holding a
    place in line and model time. A video already made is kept: only its download was stopped."""
    if video_made:
        return Interrupted(f"interrupted; the video was not saved, task {task_id} still has it")
    try:
        client.cancel(task_id, timeout=CANCEL_TIMEOUT)
    except ApiError as exc:
        if exc.code == "TASK_FINISHED":
            return Interrupted(f"interrupted; task {task_id} had already finished: leyline status {task_id}")
        return Interrupted(f"interrupted; task {task_id} could not be cancelled: {exc.message}")
    except ClientError as exc:
        return Interrupted(f"interrupted; task {task_id} could not be cancelled: {exc.message}")
    return Interrupted(f"interrupted; task {task_id} cancelled")


def _show_status(progress: ProgressLine, status: dict[str, Any]) -> None:
    eta = "" if status["eta_seconds"] is None else f"ETA {duration(status['eta_seconds'])}"
    if status["state"] in FINAL_STATES and status["state"] != TaskState.SUCCESS:
        return  # the error line that follows says how it ended
    if status["state"] == TaskState.PENDING:
        progress.show("waiting for the upload")
    elif status["state"] == TaskState.QUEUED:
        ahead = status["queue_position"]
        progress.show(f"queued: {ahead} ahead" if ahead else "queued: next in line", detail=eta)
    else:
        progress.show("generating", status["progress"], eta)


def _status(args: argparse.Namespace) -> dict[str, Any]:
    status = _client(args).status(args.task_id)
    if not args.json:
        print(_describe(status))
    return status


def _cancel(args: argparse.Namespace) -> dict[str, Any]:
    status = _client(args).cancel(args.task_id)
    if not args.json:
        print(status["state"])
    return status


def _delete(args: argparse.Namespace) -> dict[str, Any]:
    _client(args).delete(args.task_id)
    if not args.json:
        print(f"task {args.task_id} deleted")
    return {"task_id": args.task_id, "deleted": True}


def _client(args: argparse.Namespace) -> LeylineClient:
    """A client of args.api, signed in as the user who logged in to it here, if anyone did (open mode: nobody)."""
    store = SessionStore()
    session = store.load(args.api)
    return LeylineClient(args.api, credentials=Credentials(store, session) if session else None)


def _history(args: argparse.Namespace) -> dict[str, Any]:
    """Up to --limit tasks, newest first, over as many pages of GET /tasks as that takes."""
    store = SessionStore()
    session = store.load(args.api)
    if session is None:
        _cognito(args.api)  # an open API has no accounts: say that, rather than "sign in"
        raise NotSignedIn(args.api)
    client = LeylineClient(args.api, credentials=Credentials(store, session))
    tasks: list[dict[str, Any]] = []
    cursor = args.cursor
    while True:
        try:
            page = client.tasks(min(HISTORY_PAGE, args.limit - len(tasks)), cursor)
        except ApiError as exc:
            if exc.status in (404, 405):  # an API without accounts has no per-user history
                raise AccountsOff(args.api) from None
            raise
        tasks.extend(page["tasks"])
        cursor = page["next_cursor"]
        if cursor is None or len(tasks) >= args.limit:
            break
    if not args.json:
        print(_history_table(tasks, cursor))
    return {"tasks": tasks, "next_cursor": cursor}


def _history_table(tasks: list[dict[str, Any]], cursor: str | None) -> str:
    if not tasks:
        return "no tasks yet: make one with `leyline generate IMAGE`"
    rows = [f"{'created':<21}{'state':<11}{'progress':>8}  task"]
    for task in tasks:
        created = (task.get("created_at") or "")[:19].replace("T", " ")
        rows.append(f"{created:<21}{task['state']:<11}{task['progress']:>7}%  {task['task_id']}")
    if cursor:
        rows.append(f"more: leyline history --cursor {cursor}")
    return "\n".join(rows)


def _signup(args: argparse.Namespace) -> dict[str, Any]:
    cognito = _cognito(args.api)
    email = _email(args)
    password = _password(args, twice=True)
    answer = Cognito(cognito).sign_up(email, password)
    confirmed = bool(answer.get("UserConfirmed"))
    if not args.json:
        if confirmed:
            print(f"account {email} created: sign in with `leyline login`")
        else:
            print(f"account {email} created: confirm it with the code sent to it: `leyline confirm --email {email}`")
    return {"email": email, "confirmed": confirmed}


def _confirm(args: argparse.Namespace) -> dict[str, Any]:
    cognito = _cognito(args.api)
    email = _email(args)
    code = args.code or _ask("Confirmation code: ")
    Cognito(cognito).confirm_sign_up(email, code)
    if not args.json:
        print(f"account {email} confirmed: sign in with `leyline login`")
    return {"email": email, "confirmed": True}


def _login(args: argparse.Namespace) -> dict[str, Any]:
    cognito = _cognito(args.api)
    email = _email(args)
    tokens = Cognito(cognito).sign_in(email, _password(args))
    if tokens.refresh_token is None:
        raise ClientError("the sign-in service gave no refresh token", "NO_REFRESH_TOKEN")
    session = Session(args.api, email, cognito, tokens.refresh_token, tokens.access_token, tokens.expires_at)
    SessionStore().save(session)
    if not args.json:
        print(f"signed in to {args.api} as {email}")
    return {"api": args.api, "email": email, "signed_in": True}


def _logout(args: argparse.Namespace) -> dict[str, Any]:
    """Signs the user out everywhere (Cognito revokes every refresh token), then forgets the session here.
    Forgetting it here happens whatever the sign-in service answers: the person asked to be signed out."""
    store = SessionStore()
    session = store.load(args.api)
    if session is None:
        if not args.json:
            print(f"not signed in to {args.api}")
        return {"api": args.api, "signed_in": False}
    note = ""
    try:
        credentials = Credentials(store, session)
        Cognito(session.cognito).global_sign_out(credentials.access_token())
    except SessionExpired:
        pass  # already signed out everywhere
    except ClientError as exc:
        note = f" (here only: {exc.message})"
    store.remove(args.api)
    if not args.json:
        print(f"signed out of {args.api}{note}")
    return {"api": args.api, "signed_in": False}


def _cognito(api: str) -> CognitoConfig:
    """Where to sign in to `api`, from its public GET /config; AccountsOff when the API is open to everyone."""
    try:
        config = LeylineClient(api).config()
    except ApiError as exc:
        if exc.status == 404:  # an API from before accounts existed
            raise AccountsOff(api) from None
        raise
    if config.get("access_mode") != "accounts" or not config.get("cognito"):
        raise AccountsOff(api)
    return CognitoConfig.from_json(config["cognito"])


def _email(args: argparse.Namespace) -> str:
    email = (args.email or _ask("Email: ")).strip()
    if "@" not in email:
        raise UsageError(f"{email!r} is not an email address")
    return email


def _password(args: argparse.Namespace, *, twice: bool = False) -> str:
    """From stdin's first line with --password-stdin, else asked without echo (getpass, on the terminal)."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = _secret("Password: ")
        if twice and _secret("Password again: ") != password:
            raise UsageError("the two passwords differ")
    if not password:
        raise UsageError("no password given")
    return password


def _ask(prompt: str) -> str:
    """A line typed by the person; the prompt goes to stderr so that stdout stays the result (--json)."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer:
        raise UsageError(f"no answer to {prompt.strip().rstrip(':')!r} (stdin is closed)")
    return answer.strip()


def _secret(prompt: str) -> str:
    """Typed on a terminal without echo; read as a line when stdin is a pipe (a script, nothing to echo to)."""
    if not sys.stdin.isatty():
        return _ask(prompt)
    try:
        return getpass.getpass(prompt, stream=sys.stderr)
    except EOFError:
        raise UsageError("no password given (stdin is closed)") from None


def _describe(status: dict[str, Any]) -> str:
    """The status as aligned `name  value` lines, leaving out what does not apply yet."""
    error = status.get("error")
    eta = status.get("eta_seconds")
    rows = {
        "task": status["task_id"],
        "state": status["state"],
        "progress": f"{status['progress']}%",
        "queue": None if status.get("queue_position") is None else f"{status['queue_position']} ahead",
        "eta": None if eta is None else duration(eta),
        "error": f"{error['message']} ({error['code']})" if error else None,
        "video": status.get("video_url"),
        "created": status.get("created_at"),
        "started": status.get("started_at"),
        "finished": status.get("finished_at"),
    }
    return "\n".join(f"{name:<9}{value}" for name, value in rows.items() if value is not None)


def _inspect_image(path: Path) -> ImageFile:
    """Refuses early what the model would refuse late: no file, or not PNG/JPEG/WebP by its bytes."""
    try:
        with path.open("rb") as file:
            head = file.read(HEAD_BYTES)
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        raise LocalFileError(f"{path}: no such file", "FILE_NOT_FOUND") from None
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}", "FILE_UNREADABLE") from None
    if size == 0:
        raise LocalFileError(f"{path} is empty", "EMPTY_FILE")
    content_type = sniff_image_type(head)
    if content_type is None:
        raise LocalFileError(f"{path} is not a {ACCEPTED_NAMES} image", "UNSUPPORTED_FORMAT")
    return ImageFile(path, size, content_type)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}", "FILE_UNREADABLE") from None


def _output_path(output: Path | None, image: Path) -> Path:
    """Checked before any upload, so a typo in -o or a place we may not write to does not cost a whole run."""
    target = output or Path(f"{image.stem}.mp4")
    if target.is_dir():
        target = target / f"{image.stem}.mp4"
    if not target.parent.is_dir():
        raise LocalFileError(f"cannot write {target}: {target.parent} is not a directory", "OUTPUT_NOT_WRITABLE")
    _check_writable(target)
    return target


def _check_writable(target: Path) -> None:
    """Creates, then removes, a file beside `target`, as the download will. Permission bits cannot tell:
    root ignores them, and a read-only mount does not show in them."""
    try:
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".check"):
            pass
    except OSError as exc:
        raise LocalFileError(f"cannot write {target}: {exc.strerror or exc}", "OUTPUT_NOT_WRITABLE") from None
