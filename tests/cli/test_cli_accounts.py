"""`leyline signup`, `confirm`, `login`, `logout` and `history`, and the token on every other command, run as
people and scripts run them, on a local stack in accounts mode (AccessMode=accounts, Cognito on moto)."""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from infra.testing import RunningStack
from tests.accounts import ANY_CODE, FORGED_TOKEN, PASSWORD, Users
from tests.cli.test_cli import assert_one_error_line, environment, leyline_command
from tests.imagefactory import encode, pattern

pytestmark = pytest.mark.integration

UNKNOWN_TASK = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The person's config directory (XDG_CONFIG_HOME): empty, nobody signed in."""
    path = tmp_path / "config"
    path.mkdir()
    return path


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(encode(pattern(), "PNG"))
    return path


def run(stack: RunningStack, home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`leyline ARGS --api <stack>` with `home` as XDG_CONFIG_HOME and `stdin` piped in (a script's way)."""
    return subprocess.run(
        leyline_command(*args, "--api", stack.api_url),
        cwd=home.parent,
        env=environment({"XDG_CONFIG_HOME": str(home)}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def login(stack: RunningStack, home: Path, email: str, password: str = PASSWORD) -> None:
    signed = run(stack, home, "login", "--email", email, "--password-stdin", stdin=f"{password}\n")
    assert signed.returncode == 0, signed.stderr


def session_file(home: Path) -> Path:
    return home / "leyline" / "sessions.json"


def stored_session(stack: RunningStack, home: Path) -> dict[str, Any]:
    session: dict[str, Any] = json.loads(session_file(home).read_text())["sessions"][stack.api_url]
    return session


def edit_session(stack: RunningStack, home: Path, **changes: Any) -> None:
    """Changes the stored session as time (an access token's end) or another device would."""
    sessions = json.loads(session_file(home).read_text())
    sessions["sessions"][stack.api_url].update(changes)
    session_file(home).write_text(json.dumps(sessions))


def test_a_person_signs_up_confirms_and_logs_in_at_a_terminal_without_the_password_showing(
    accounts: RunningStack, home: Path
) -> None:
    # Given a person at a terminal (a pseudo-terminal) who signs up: email, password, password again
    signup = Terminal(accounts, home, "signup")
    signup.answer("Email: ", "ada@example.com")
    signup.answer("Password: ", PASSWORD)
    signup.answer("Password again: ", PASSWORD)
    screen, code = signup.finish()
    # Then the account is made and they are told how to confirm it; the password never appeared on the screen
    assert code == 0, screen
    assert "ada@example.com" in screen  # the email is echoed as typed
    assert PASSWORD not in screen
    assert "leyline confirm --email ada@example.com" in screen

    # When they confirm it with the emailed code (locally: any code), and log in the same way
    confirm = Terminal(accounts, home, "confirm", "--email", "ada@example.com")
    confirm.answer("Confirmation code: ", ANY_CODE)
    assert confirm.finish()[1] == 0
    login = Terminal(accounts, home, "login")
    login.answer("Email: ", "ada@example.com")
    login.answer("Password: ", PASSWORD)
    screen, code = login.finish()

    # Then they are signed in, the password unseen, and the refresh token is kept in a file only they can read
    assert code == 0, screen
    assert f"signed in to {accounts.api_url} as ada@example.com" in screen
    assert PASSWORD not in screen
    assert stat.S_IMODE(session_file(home).stat().st_mode) == 0o600
    assert stat.S_IMODE(session_file(home).parent.stat().st_mode) == 0o700
    assert stored_session(accounts, home)["refresh_token"]
    assert PASSWORD not in session_file(home).read_text()


def test_without_xdg_config_home_the_session_goes_to_dot_config(
    accounts: RunningStack, users: Users, tmp_path: Path
) -> None:
    # Given a user, and a person whose environment has no XDG_CONFIG_HOME
    users.sign_up("grace@example.com")
    env = {key: value for key, value in environment({"HOME": str(tmp_path)}).items() if key != "XDG_CONFIG_HOME"}

    # When they log in
    signed = subprocess.run(
        leyline_command("login", "--email", "grace@example.com", "--password-stdin", "--api", accounts.api_url),
        env=env,
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then the session is in ~/.config/leyline, mode 0600
    assert signed.returncode == 0, signed.stderr
    kept = tmp_path / ".config" / "leyline" / "sessions.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_generate_status_and_history_send_the_token(
    accounts: RunningStack, users: Users, home: Path, photo: Path
) -> None:
    # Given a signed-in user
    users.sign_up("alan@example.com")
    login(accounts, home, "alan@example.com")

    # When they make a video
    made = run(accounts, home, "generate", str(photo), "-o", "out.mp4", "--json")

    # Then it is made and saved (the token went with the submit, every status poll and the video's redirect,
    # and not on to storage, which would refuse a second kind of authentication)
    assert made.returncode == 0, made.stderr
    task_id = json.loads(made.stdout)["task_id"]
    assert (home.parent / "out.mp4").read_bytes()[4:8] == b"ftyp"
    status = run(accounts, home, "status", task_id)
    assert status.returncode == 0, status.stderr
    assert "state    SUCCESS" in status.stdout.splitlines()

    # And their history lists it, for people and for scripts
    human = run(accounts, home, "history")
    assert human.returncode == 0, human.stderr
    assert human.stdout.splitlines()[0].split() == ["created", "state", "progress", "task"]
    assert human.stdout.splitlines()[1].split()[-3:] == ["SUCCESS", "100%", task_id]
    machine = json.loads(run(accounts, home, "history", "--json").stdout)
    assert [task["task_id"] for task in machine["tasks"]] == [task_id]
    assert machine["next_cursor"] is None


def test_generate_email_gets_the_signed_in_user_an_email_when_the_video_is_ready(
    accounts: RunningStack, users: Users, home: Path, photo: Path
) -> None:
    # Given a signed-in user (sign-up confirmed: their address is verified)
    users.sign_up("hedy@example.com")
    login(accounts, home, "hedy@example.com")

    # When they make a video with --email
    made = run(accounts, home, "generate", str(photo), "-o", "mailed.mp4", "--email", "--json")

    # Then it is made, and moto's SES holds one message to their own address about that task
    assert made.returncode == 0, made.stderr
    task_id = json.loads(made.stdout)["task_id"]
    deadline = time.monotonic() + 20
    to_hedy: list[dict[str, Any]] = []
    while not to_hedy and time.monotonic() < deadline:
        sent = requests.get(f"{accounts.aws_endpoint}/moto-api/data.json", timeout=10).json()
        messages = sent.get("ses", {}).get("Message", [])
        to_hedy = [m for m in messages if m["destinations"]["ToAddresses"] == ["hedy@example.com"]]
        time.sleep(0.2)
    assert len(to_hedy) == 1
    assert task_id in to_hedy[0]["body"]


def test_history_pages_through_every_task_once_newest_first(accounts: RunningStack, users: Users, home: Path) -> None:
    # Given a user with 25 tasks
    user = users.new_user("hopper@example.com")
    made = [
        requests.post(f"{accounts.api_url}/uploads", json={}, headers=user.authorization, timeout=10).json()["task_id"]
        for _ in range(25)
    ]
    login(accounts, home, "hopper@example.com")

    # When a script lists them a page at a time (20 by default), going on from the cursor
    first = json.loads(run(accounts, home, "history", "--json").stdout)
    rest = json.loads(run(accounts, home, "history", "--json", "--cursor", first["next_cursor"]).stdout)

    # Then it gets every task once, newest first (two made within one millisecond may come either way), and the
    # end has no cursor
    tasks = first["tasks"] + rest["tasks"]
    listed = [task["task_id"] for task in tasks]
    assert (len(first["tasks"]), len(rest["tasks"])) == (20, 5)
    assert sorted(listed) == sorted(made)
    assert len(set(listed)) == 25
    created = [task["created_at"] for task in tasks]
    assert created == sorted(created, reverse=True)
    assert rest["next_cursor"] is None
    # And --limit takes as many pages as it needs; a person is told how to see more
    assert [
        task["task_id"]
        for task in json.loads(run(accounts, home, "history", "--json", "--limit", "25").stdout)["tasks"]
    ] == listed
    more = run(accounts, home, "history", "--limit", "3").stdout.splitlines()
    assert more[-1].startswith("more: leyline history --cursor ")


def test_an_access_token_near_its_end_is_refreshed_before_use_and_kept(
    accounts: RunningStack, users: Users, home: Path
) -> None:
    # Given a signed-in user whose access token has run out (an hour went by)
    users.sign_up("lovelace@example.com")
    login(accounts, home, "lovelace@example.com")
    first = stored_session(accounts, home)["access_token"]
    edit_session(accounts, home, access_expires_at=time.time() - 1)

    # When they list their history
    listed = run(accounts, home, "history")

    # Then it works, with a new access token from the refresh token, kept for the next command
    assert listed.returncode == 0, listed.stderr
    session = stored_session(accounts, home)
    assert session["access_token"] != first
    assert session["access_expires_at"] > time.time() + 600
    assert stat.S_IMODE(session_file(home).stat().st_mode) == 0o600


def test_an_access_token_the_api_refuses_is_refreshed_and_the_call_sent_again(
    accounts: RunningStack, users: Users, home: Path
) -> None:
    # Given a signed-in user whose stored access token the gateway will refuse, though it looks fresh
    users.sign_up("turing@example.com")
    login(accounts, home, "turing@example.com")
    edit_session(accounts, home, access_token=FORGED_TOKEN, access_expires_at=time.time() + 3000)

    # When they ask for a task's status
    status = run(accounts, home, "status", UNKNOWN_TASK)

    # Then the 401 made it refresh and ask again: the API's own answer comes back (404), not a sign-in error
    assert status.returncode == 5, status.stderr
    assert_one_error_line(status.stderr, f"No task {UNKNOWN_TASK} exists")
    assert stored_session(accounts, home)["access_token"] != FORGED_TOKEN


def test_another_users_task_is_unknown_to_the_cli(accounts: RunningStack, users: Users, home: Path) -> None:
    # Given a task of one user, and another user signed in
    owner = users.new_user("owner@example.com")
    task_id = requests.post(f"{accounts.api_url}/uploads", json={}, headers=owner.authorization, timeout=10).json()[
        "task_id"
    ]
    users.sign_up("stranger@example.com")
    login(accounts, home, "stranger@example.com")

    # When the other user asks for it, cancels or deletes it, Then it does not exist for them
    for command in ("status", "cancel", "delete"):
        answer = run(accounts, home, command, task_id, "--json")
        assert answer.returncode == 5, answer.stderr
        assert json.loads(answer.stdout)["error"]["code"] == "TASK_NOT_FOUND"
    # And their history does not list it
    assert json.loads(run(accounts, home, "history", "--json").stdout)["tasks"] == []


# Each sets the scene for one run, with a user of its own (`email`), and gives the command to run.
def _wrong_password(stack: RunningStack, users: Users, home: Path, email: str) -> list[str]:
    users.sign_up(email, "Another-password-99")  # the command is given PASSWORD
    return ["login", "--email", email, "--password-stdin"]


def _unknown_email(stack: RunningStack, users: Users, home: Path, email: str) -> list[str]:
    return ["login", "--email", email, "--password-stdin"]


def _unconfirmed(stack: RunningStack, users: Users, home: Path, email: str) -> list[str]:
    users.sign_up(email, confirm=False)
    return ["login", "--email", email, "--password-stdin"]


def _expired_session(stack: RunningStack, users: Users, home: Path, email: str) -> list[str]:
    # Signed in here, then signed out everywhere from another device, once this access token has run out.
    elsewhere = users.new_user(email)
    login(stack, home, email)
    users.idp.global_sign_out(AccessToken=elsewhere.access_token)
    edit_session(stack, home, access_expires_at=0)
    return ["status", UNKNOWN_TASK]


def _not_signed_in(stack: RunningStack, users: Users, home: Path, email: str) -> list[str]:
    return ["history"]


def _email_taken(stack: RunningStack, users: Users, home: Path, email: str) -> list[str]:
    users.sign_up(email)
    return ["signup", "--email", email, "--password-stdin"]


@pytest.mark.parametrize(
    ("given", "exit_code", "code", "message"),
    [
        (_not_signed_in, 6, "NOT_SIGNED_IN", "you are not signed in to http://127.0.0.1:"),
        (_expired_session, 7, "SESSION_EXPIRED", "your session has expired or was signed out"),
        (_wrong_password, 8, "WRONG_CREDENTIALS", "wrong email or password"),
        (_unknown_email, 8, "WRONG_CREDENTIALS", "wrong email or password"),
        (_unconfirmed, 9, "NOT_CONFIRMED", "this account is not confirmed yet: run `leyline confirm`"),
        (_email_taken, 10, "USERNAME_EXISTS", "an account with this email already exists"),
    ],
    ids=["not-signed-in", "expired-session", "wrong-password", "unknown-email", "unconfirmed", "email-taken"],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_each_account_failure_is_one_sentence_and_its_own_exit_code(
    accounts: RunningStack,
    users: Users,
    tmp_path: Path,
    given: Any,
    exit_code: int,
    code: str,
    message: str,
    as_json: bool,
) -> None:
    # Given the situation, in a fresh config directory with a user of this run's own
    home = tmp_path / "config"
    home.mkdir()
    args = given(accounts, users, home, f"{given.__name__.strip('_')}-{'json' if as_json else 'human'}@example.com")

    # When the command runs (given PASSWORD where it asks for one)
    answer = run(accounts, home, *args, *(["--json"] if as_json else []), stdin=f"{PASSWORD}\n")

    # Then its exit code says which way, one line on stderr says what to do, no traceback
    assert answer.returncode == exit_code, answer.stderr
    assert_one_error_line(answer.stderr, message)
    if as_json:
        assert json.loads(answer.stdout)["error"]["code"] == code
    else:
        assert answer.stdout == ""


def test_logout_signs_out_everywhere_and_forgets_the_session(accounts: RunningStack, users: Users, home: Path) -> None:
    # Given a signed-in user
    users.sign_up("logout@example.com")
    login(accounts, home, "logout@example.com")
    refresh_token = stored_session(accounts, home)["refresh_token"]

    # When they log out
    out = run(accounts, home, "logout")

    # Then it says so, the session is gone from the file, and Cognito no longer takes its refresh token
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"signed out of {accounts.api_url}\n"
    assert accounts.api_url not in json.loads(session_file(home).read_text())["sessions"]
    with pytest.raises(ClientError, match="NotAuthorizedException"):
        users.idp.initiate_auth(
            ClientId=users.client_id, AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters={"REFRESH_TOKEN": refresh_token}
        )
    # And the next command is not signed in; logging out again is no error
    assert run(accounts, home, "status", UNKNOWN_TASK).returncode == 6
    again = run(accounts, home, "logout")
    assert (again.returncode, again.stdout) == (0, f"not signed in to {accounts.api_url}\n")


def test_an_open_api_has_nothing_to_sign_in_to(stack: RunningStack, home: Path, photo: Path) -> None:
    # Given the stack in open mode (its default)
    # When a person tries to log in or list a history
    for args in (["login", "--email", "ada@example.com", "--password-stdin"], ["history"]):
        answer = run(stack, home, *args, stdin=f"{PASSWORD}\n")
        # Then one sentence says the API has no accounts (exit 5), and nothing was stored
        assert answer.returncode == 5, answer.stderr
        assert_one_error_line(answer.stderr, "is open to everyone: it has no accounts")
    assert not session_file(home).exists()
    # And the rest works as ever, with no token
    assert run(stack, home, "generate", str(photo), "-o", "open.mp4").returncode == 0
    # But --email is refused in one sentence: an anonymous task has no address to write to
    mailed = run(stack, home, "generate", str(photo), "-o", "mailed.mp4", "--email")
    assert mailed.returncode != 0
    assert_one_error_line(mailed.stderr, "notify_email needs accounts")


class Terminal:
    """The CLI on a pseudo-terminal, as a person runs it: what they type is echoed unless the CLI turns echo off."""

    def __init__(self, stack: RunningStack, home: Path, *args: str) -> None:
        self._master, slave = pty.openpty()
        # A session of its own: its terminal is this pty (stdin), never the one running the tests.
        self.process = subprocess.Popen(
            leyline_command(*args, "--api", stack.api_url),
            env=environment({"XDG_CONFIG_HOME": str(home)}),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self.screen = ""

    def answer(self, prompt: str, text: str, timeout: float = 30.0) -> None:
        """Waits (bounded) for `prompt` on the screen, then types `text` and Enter."""
        self._read_until(lambda: self.screen.endswith(prompt), timeout)
        os.write(self._master, f"{text}\n".encode())

    def finish(self, timeout: float = 60.0) -> tuple[str, int]:
        self._read_until(lambda: self.process.poll() is not None, timeout)
        self._read_until(lambda: False, 0.2)  # what is left in the pty
        os.close(self._master)
        return self.screen, self.process.wait(timeout=5)

    def _read_until(self, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if ready:
                try:
                    self.screen += os.read(self._master, 4096).decode(errors="replace")
                except OSError:  # the child closed the pty: nothing more to read
                    return
        assert done() or timeout <= 0.2, f"timed out; the screen so far: {self.screen!r}"
