"""Derived session tokens: stable, distinct per session and per secret, never the secret."""

from pathlib import Path

from argus.auth import derive_session_token, load_or_create_secret, session_of_token


def test_derivation_is_stable_and_scoped() -> None:
    a = derive_session_token("s3cret", "abc")
    assert a == derive_session_token("s3cret", "abc")
    assert a != derive_session_token("s3cret", "abd")
    assert a != derive_session_token("other", "abc")
    assert "s3cret" not in a


def test_home_secret_is_created_once_with_private_mode(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first
    path = tmp_path / "gateway" / "secret"
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_token_proves_its_session_only() -> None:
    token = derive_session_token("k", "sess.1")
    assert session_of_token("k", token) == "sess.1"
    assert session_of_token("other", token) is None
    forged = token.replace("sess.1", "sess.2")
    assert session_of_token("k", forged) is None
    assert session_of_token("k", "k") is None and session_of_token("k", None) is None
