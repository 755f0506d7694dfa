"""Where and how the CLI keeps a signed-in user's session: fast tests, no stack, no network."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from leyline.client.accounts import CognitoConfig, Credentials, Session, SessionStore, config_dir
from leyline.client.errors import Unreachable

API = "http://127.0.0.1:8080"
# Nothing listens on port 1: a session that tried to refresh against it would fail with Unreachable.
NOWHERE = CognitoConfig(region="us-east-1", user_pool_id="us-east-1_x", client_id="c", endpoint="http://127.0.0.1:1")


def _session(api: str = API, *, expires_at: float = 2_000_000_000.0) -> Session:
    return Session(api, "ada@example.com", NOWHERE, "refresh-1", "access-1", expires_at)


def test_the_config_directory_follows_xdg_config_home(tmp_path: Path) -> None:
    # Given XDG_CONFIG_HOME set, When the CLI looks for its directory, Then it is $XDG_CONFIG_HOME/leyline
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "leyline"


@pytest.mark.parametrize("xdg", [None, "", "relative/dir"], ids=["unset", "empty", "relative"])
def test_without_a_usable_xdg_config_home_it_is_dot_config(xdg: str | None) -> None:
    # Given XDG_CONFIG_HOME unset, empty or relative (the XDG rules say to ignore a relative one)
    environ = {} if xdg is None else {"XDG_CONFIG_HOME": xdg}
    # Then the directory is ~/.config/leyline
    assert config_dir(environ) == Path.home() / ".config" / "leyline"


def test_a_saved_session_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # Given a store in a directory that does not exist yet
    store = SessionStore(tmp_path / "leyline")

    # When a session is saved
    store.save(_session())

    # Then the file is 0600 in a 0700 directory, nothing else was left beside it, and it reads back the same
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert [path.name for path in store.directory.iterdir()] == ["sessions.json"]
    assert store.load(API) == _session()


def test_sessions_of_two_apis_are_kept_apart_and_removed_one_by_one(tmp_path: Path) -> None:
    # Given sessions for two deployments
    store = SessionStore(tmp_path)
    other = "https://api.example.com"
    store.save(_session())
    store.save(_session(other))

    # When one is removed, Then the other stays, and removing it twice says there was nothing to remove
    assert store.remove(API) is True
    assert store.load(API) is None
    assert store.load(other) == _session(other)
    assert store.remove(API) is False


@pytest.mark.parametrize("content", ["not json", "[]", '{"sessions": {"http://127.0.0.1:8080": {"api": 1}}}'])
def test_an_unreadable_file_is_as_good_as_not_signed_in(tmp_path: Path, content: str) -> None:
    # Given a sessions file damaged or from another version
    store = SessionStore(tmp_path)
    store.path.write_text(content)

    # Then there is no session (the CLI says "not signed in" rather than crash), and saving repairs the file
    assert store.load(API) is None
    store.save(_session())
    assert store.load(API) == _session()


def test_a_fresh_access_token_is_used_as_it_is(tmp_path: Path) -> None:
    # Given a session whose access token is good for a long while (its Cognito unreachable)
    credentials = Credentials(SessionStore(tmp_path), _session(expires_at=10_000.0), clock=lambda: 1_000.0)

    # When a command asks for the token, Then it is the stored one: no refresh was attempted
    assert credentials.access_token() == "access-1"


def test_an_access_token_about_to_expire_is_refreshed_before_use(tmp_path: Path) -> None:
    # Given a session whose access token ends in 30 s, and its sign-in service unreachable
    credentials = Credentials(SessionStore(tmp_path), _session(expires_at=1_030.0), clock=lambda: 1_000.0)

    # When a command asks for the token, Then it goes to Cognito for a new one first (here: cannot reach it)
    with pytest.raises(Unreachable, match=re.escape("cannot reach the sign-in service at http://127.0.0.1:1")):
        credentials.access_token()
