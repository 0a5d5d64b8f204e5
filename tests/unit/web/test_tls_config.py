"""TLS settings are checked before anything binds: both files or neither, and readable."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.config import ConfigError, load_settings
from argus.daemon import hypercorn_config


def test_certificate_and_key_come_together(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="--keyfile"):
        load_settings({"tls_certfile": str(cert)}, environ={})
    with pytest.raises(ConfigError, match="ARGUS_TLS_KEYFILE"):
        load_settings({}, environ={"ARGUS_TLS_CERTFILE": str(cert)})


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="--keyfile: cannot read"):
        load_settings(
            {"tls_certfile": str(cert), "tls_keyfile": str(tmp_path / "missing.pem")},
            environ={},
        )


def test_tls_adds_a_loopback_link_for_runtimes(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    settings = load_settings(
        {},
        environ={
            "ARGUS_TLS_CERTFILE": str(tmp_path / "cert.pem"),
            "ARGUS_TLS_KEYFILE": str(tmp_path / "key.pem"),
        },
    )
    config = hypercorn_config(settings)
    assert config.ssl_enabled and config.bind == ["127.0.0.1:8080"]
    assert config.insecure_bind == ["127.0.0.1:0"]
    plain = hypercorn_config(load_settings({}, environ={}))
    assert not plain.ssl_enabled and plain.insecure_bind == []
