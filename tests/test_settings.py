"""Settings: every gotune_* key is declared once and checked before any host is touched."""

from __future__ import annotations

import hashlib
import os
import pwd
from pathlib import Path

import pytest

from gotune.errors import GotuneError
from gotune.settings import PREFIX, Settings, declared, default_users, validate_host_data

GOOD_SHA = hashlib.sha256(b"go").hexdigest()


def test_defaults_fill_every_declared_setting() -> None:
    s = validate_host_data({}, "dev-01")
    assert set(s.to_dict()) == {PREFIX + f.name for f in declared()}
    assert s.gocache_tmpfs == "auto"
    assert s.users == ()  # over SSH nobody is guessed


def test_every_setting_has_a_doc_and_a_type_the_validator_checks() -> None:
    for f in declared():
        assert f.metadata["doc"].strip()
    with pytest.raises(GotuneError, match="gotune_mirror_port must be a number"):
        validate_host_data({"gotune_mirror_port": "3000"}, "h")


def test_settings_are_frozen_and_typed() -> None:
    s = validate_host_data({"gotune_users": ["dev"], "gotune_tmpfs_max_gib": 2}, "h")
    assert isinstance(s, Settings) and s.users == ("dev",) and s.tmpfs_max_gib == 2
    with pytest.raises(AttributeError):
        s.tmpfs_max_gib = 4  # type: ignore[misc]


def test_same_settings_have_the_same_digest() -> None:
    a = validate_host_data({"gotune_users": ["dev"]}, "a")
    assert a.digest() == validate_host_data({"gotune_users": ("dev",)}, "b").digest()
    assert a.digest() != validate_host_data({"gotune_users": ["ops"]}, "a").digest()


def test_local_default_user_is_sudo_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    assert default_users("@local") == ("alice",)
    monkeypatch.delenv("SUDO_USER")
    # A stale $USER (plain `su` keeps it) or none at all: the effective uid decides.
    me = pwd.getpwuid(os.geteuid()).pw_name
    monkeypatch.setenv("USER", "bob")
    monkeypatch.setenv("LOGNAME", "bob")
    assert default_users("@local") == (me,)
    monkeypatch.delenv("USER")
    monkeypatch.delenv("LOGNAME")
    assert default_users("@local") == (me,)


def test_pyinfra_keys_are_ignored() -> None:
    s = validate_host_data({"ssh_user": "root", "_sudo": True, "gotune_users": ["dev"]}, "h")
    assert s.users == ("dev",)


def test_a_good_toolchain_setting_is_accepted(tmp_path: Path) -> None:
    tarball = tmp_path / "go.tar.gz"
    tarball.write_bytes(b"go")
    s = validate_host_data(
        {
            "gotune_go_version": "1.22.3",
            "gotune_go_tarball": str(tarball),
            "gotune_go_sha256": GOOD_SHA,
        },
        "h",
    )
    assert s.go_version == "1.22.3"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"gotune_colour": "blue"}, ["unknown setting gotune_colour"]),
        ({"gotune_user": ["dev"]}, ["unknown setting gotune_user", "gotune_users"]),
        ({"gotune_users": "dev"}, ["gotune_users", "list"]),
        ({"gotune_users": ["Dev Ops"]}, ["gotune_users", "not a valid user name"]),
        ({"gotune_users": ["dev;rm -rf /"]}, ["gotune_users", "not a valid user name"]),
        ({"gotune_users": ["a" * 33]}, ["gotune_users", "not a valid user name"]),
        ({"gotune_tmpfs_max_gib": -1}, ["gotune_tmpfs_max_gib", "positive"]),
        ({"gotune_min_free_gib": -5}, ["gotune_min_free_gib", "negative"]),
        ({"gotune_tmpfs_min_ram_gib": "16"}, ["gotune_tmpfs_min_ram_gib", "number"]),
        ({"gotune_tmpfs_max_gib": True}, ["gotune_tmpfs_max_gib", "true/false"]),
        ({"gotune_gocache_tmpfs": "sometimes"}, ["gotune_gocache_tmpfs", "auto, always, never"]),
        ({"gotune_go_version": "go1.22.3"}, ["gotune_go_version", "without the 'go' prefix"]),
        ({"gotune_go_version": "1.22.3; reboot"}, ["gotune_go_version", "not a Go version"]),
        ({"gotune_go_version": "latest"}, ["gotune_go_version", "not a Go version"]),
        ({"gotune_go_sha256": "abc"}, ["gotune_go_sha256", "64"]),
        ({"gotune_go_sha256": GOOD_SHA.upper()}, ["gotune_go_sha256", "lowercase"]),
        ({"gotune_go_tarball": "http://example.com/go.tgz"}, ["gotune_go_tarball", "https"]),
        (
            {"gotune_go_tarball": "https://x.example/go$(id).tgz"},
            ["gotune_go_tarball", "https URL"],
        ),
        ({"gotune_go_tarball": "/nonexistent/go.tgz"}, ["gotune_go_tarball", "no such file"]),
        ({"gotune_go_version": "1.22.3"}, ["gotune_go_tarball", "required"]),
        ({"gotune_go_source": "snap"}, ["gotune_go_source", "tarball, distro"]),
        ({"gotune_snapshot_minutes": 0}, ["gotune_snapshot_minutes", "positive"]),
        # An IPv6 zone: Python takes any text after '%', which would reach a unit file.
        ({"gotune_mirror_listen": "fe80::1%eth0"}, ["gotune_mirror_listen", "zone"]),
        ({"gotune_buildcache_listen": "fe80::1%a\nb"}, ["gotune_buildcache_listen", "zone"]),
        ({"gotune_mirror_allow": ["fe80::/64%x"]}, ["gotune_mirror_allow", "zone"]),
        ({"gotune_mirror_limit_rate": "8M\n"}, ["gotune_mirror_limit_rate"]),
        # NaN passes every comparison, YAML's .inf is a float, 1e999 too; ports wrap around.
        ({"gotune_tmpfs_max_gib": float("nan")}, ["gotune_tmpfs_max_gib", "finite"]),
        ({"gotune_min_free_gib": float("inf")}, ["gotune_min_free_gib", "finite"]),
        ({"gotune_snapshot_minutes": 10**30}, ["gotune_snapshot_minutes", "finite"]),
        ({"ssh_port": 107758}, ["ssh_port", "1-65535"]),
        ({"ssh_port": True}, ["ssh_port", "1-65535"]),
        # Python's $ matches before a final newline: the whole value must match.
        ({"gotune_users": ["alice\n"]}, ["gotune_users", "not a valid user name"]),
        ({"gotune_go_version": "1.22.3\n"}, ["gotune_go_version", "not a Go version"]),
        ({"gotune_go_sha256": GOOD_SHA + "\n"}, ["gotune_go_sha256", "64"]),
        ({"gotune_mirror_cache_dir": "/var/lib/x\n"}, ["gotune_mirror_cache_dir"]),
        # A service's directory is chowned to its system user: never / or a system tree.
        ({"gotune_mirror_cache_dir": "/"}, ["gotune_mirror_cache_dir", "system directory"]),
        ({"gotune_buildcache_cache_dir": "/proc/x"}, ["gotune_buildcache_cache_dir", "system"]),
        ({"GOTUNE_TMPFS_MAX_GIB": 4}, ["unknown setting GOTUNE_TMPFS_MAX_GIB",
                                       "did you mean gotune_tmpfs_max_gib"]),
        ({"gotune-mirror-enabled": True}, ["did you mean gotune_mirror_enabled"]),
        ({"gotune_mirror_allow": [1]}, ["gotune_mirror_allow", "a string"]),
        ({"gotune_buildcache_url": "http://10.0.0.1:99999"}, ["gotune_buildcache_url", "port"]),
        ({"gotune_buildcache_token_file": "\x00"}, ["gotune_buildcache_token_file"]),
        ({"gotune_buildcache_token_file": "/"}, ["gotune_buildcache_token_file"]),
        ({"gotune_buildcache_measure_runs": 10**6}, ["gotune_buildcache_measure_runs", "0 to 50"]),
        ({"gotune_buildcache_measure_packages": 0}, ["gotune_buildcache_measure_packages", "1 to"]),
        # Without the prefix a setting's name is a typo, not pyinfra data (issue #12).
        ({"tmpfs_max_gib": 2}, ["tmpfs_max_gib", "did you mean gotune_tmpfs_max_gib"]),
        (
            {"gotune_mirror_enabled": True, "gotune_mirror_listen": "10.0.0.5"},
            ["gotune_mirror_allow"],
        ),
    ],
)
def test_malformed_setting_is_refused_naming_key_and_host(data: dict, words: list[str]) -> None:
    with pytest.raises(GotuneError) as err:
        validate_host_data(data, "dev-07")
    message = str(err.value)
    assert "dev-07" in message
    assert "\n" not in message
    for word in words:
        assert word in message
