"""What a new user met on a fresh Debian (issue #12), one finding per test.

1 no sudo on a minimal Debian · 2 root judged by $USER · 3 Go 1.19 (tests/
test_verify_runner.py) · 4 a silent toolchain download failure · 5 a failed
verify with exit status 0 · 6 an overlay root called RAM · 7 no Go, no word
(tests/test_plan.py) · 8 typos, unreachable hosts, undo and apply prompts ·
9 tests failing on a machine without /etc/hosts or with /tmp on tmpfs (tests/
test_sandbox.py, tests/test_verify_runner.py). The whole walk from `git clone`
to the test command's last line is scripts/fresh-machine-check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import OperationError

from gotune.facts.collect import Dump
from gotune.facts.storage import parse_mounts
from gotune.operations.toolchain import fetch_tarball
from tests.conftest import SandboxFactory
from tests.test_apply import REPO, gotune, sh

README = REPO / "README.md"


def quick_start_blocks() -> list[list[str]]:
    """The ```sh blocks of the README's Quick start, as lines."""
    text = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip().splitlines() for b in re.findall(r"```sh\n(.*?)```", text, re.S)]


def test_1_the_root_quick_start_needs_no_sudo_and_the_other_uses_it() -> None:
    as_root, as_user = quick_start_blocks()[:2]
    assert not any("sudo" in line for line in as_root)
    assert "sh scripts/install" in as_root and "gotune apply" in as_root
    # Every line that needs root says sudo; cloning stays the user's own.
    for line in as_user:
        assert line.startswith("sudo ") == (not line.startswith("git clone")), line
    assert os.access(REPO / "scripts" / "install", os.X_OK)


def test_2_root_is_the_effective_uid_not_user_on_local(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: a stale $USER must not make root look like someone else")
    env = {k: v for k, v in os.environ.items() if k not in ("USER", "LOGNAME", "SUDO_USER")}
    env["USER"] = "alice"  # what plain `su` leaves behind
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "plan", "@local", "--json"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (plan,) = json.loads(out.stdout)["hosts"].values()
    assert {d["user"] for d in plan["decisions"] if d["user"]} == {"root"}


# --- 4: the toolchain is downloaded once, on the control machine, or it says why ------


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the tests' own CA), with the extensions
    Python 3.13's strict verification (VERIFY_X509_STRICT, Debian 13's default) wants."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    import ipaddress

    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=False, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    return cert_file, key_file


class Tarballs:
    """An HTTPS server on loopback serving one file; it counts the requests."""

    def __init__(self, ca: tuple[Path, Path], body: bytes) -> None:
        self.body = body
        self.requests = 0
        self.cert, key = ca
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if self.path != "/go.tar.gz":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One CA for every HTTPS server of a test process: from Python 3.13 urllib's default
    opener keeps the TLS context (the CA bundle) of its first HTTPS request."""
    return _certificate(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def tarballs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_ca: tuple[Path, Path]
) -> Iterator[Tarballs]:
    server = Tarballs(test_ca, b"go tarball bytes")
    monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))  # trusted like a real CA
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield server
    server.close()


def test_4_the_tarball_is_fetched_once_checked_and_kept(tarballs: Tarballs) -> None:
    sha = hashlib.sha256(tarballs.body).hexdigest()
    first = fetch_tarball(f"{tarballs.url}/go.tar.gz", sha)
    second = fetch_tarball(f"{tarballs.url}/go.tar.gz", sha)
    assert first == second and Path(first).read_bytes() == tarballs.body
    assert tarballs.requests == 1  # a fleet pays one download


@pytest.mark.parametrize(
    ("path", "sha", "words"),
    [
        ("/missing.tar.gz", "0" * 64, ["HTTP 404", "/missing.tar.gz"]),
        ("/go.tar.gz", "0" * 64, ["checksum mismatch", "gotune_go_sha256 says 000"]),
    ],
)
def test_4_a_failed_download_names_the_url_and_why_and_changes_nothing(
    tarballs: Tarballs, path: str, sha: str, words: list[str]
) -> None:
    with pytest.raises(OperationError) as err:
        fetch_tarball(f"{tarballs.url}{path}", sha)
    assert all(w in str(err.value) for w in words) and "nothing was changed" in str(err.value)


def test_4_no_route_names_the_network_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"https://127.0.0.1:{port}/go.tgz"
    with pytest.raises(OperationError, match=f"cannot download {url}: .*refused"):
        fetch_tarball(url, "0" * 64)


@pytest.mark.sandbox
def test_4_a_dry_run_downloads_nothing_and_makes_no_token_on_the_control_machine(
    sandbox: SandboxFactory, tarballs: Tarballs, tmp_path: Path
) -> None:
    sha = hashlib.sha256(tarballs.body).hexdigest()
    token = tmp_path / "buildcache.token"
    data = {"gotune_users": ["dev"], "gotune_go_version": "1.99.1",
            "gotune_go_tarball": f"{tarballs.url}/go.tar.gz", "gotune_go_sha256": sha,
            "gotune_buildcache_server": True, "gotune_buildcache_token_file": str(token)}
    host = sandbox(1, data=[data]).hosts[0]
    host.add_user("dev")
    dry = gotune("apply", str(host.key.parent / "inventory.py"), "--dry", "--json")
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    changes = json.loads(dry.stdout)["hosts"]["sbx1"]["would_change"]
    assert any("go 1.99.1" in c.lower() or "toolchain" in c.lower() for c in changes), changes
    assert any("token" in c for c in changes), changes  # shown as changing, not made
    assert tarballs.requests == 0 and not (tmp_path / "cache" / "gotune").exists()
    assert not token.exists()


# --- 6: an overlay root is what the facts can prove: unknown, not RAM ------------------


def test_6_an_overlay_root_whose_upper_layer_is_not_visible_is_unknown() -> None:
    # A container's root: its upperdir names a path of the host's namespace, where
    # the first landing found it on this view's /tmp tmpfs and called the root RAM.
    info = (
        "20 1 0:50 / / rw,relatime - overlay overlay "
        "rw,lowerdir=/l,upperdir=/tmp/u,workdir=/tmp/w\n"
        "21 20 0:51 / /tmp rw,nosuid - tmpfs tmpfs rw,size=1024k\n"
    )
    dump = Dump(files={"/proc/self/mountinfo": info.encode()})
    unknown: list[str] = []
    root, tmp = parse_mounts(dump, [], unknown)
    assert (root.path, root.class_) == ("/", "unknown")
    assert (tmp.path, tmp.class_) == ("/tmp", "tmpfs")


# --- 8: an unreachable host is named, with the SSH error ------------------------------


def test_8_an_unreachable_host_is_named_with_the_ssh_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.9", 0))
        port = s.getsockname()[1]
    inventory = tmp_path / "inv.py"
    inventory.write_text(f"hosts = [('127.0.0.9', {{'ssh_port': {port}}})]\n")
    out = gotune("plan", str(inventory))
    assert out.returncode == 1
    assert "127.0.0.9 (Could not connect" in out.stderr, out.stderr
    assert f"Unable to connect to port {port}" in out.stderr  # paramiko's reason, kept
    assert "No hosts remaining" not in out.stderr and out.stderr.count("\n") == 1
    # A dry apply says the same, and fails as a real one would.
    dry = gotune("apply", str(inventory), "--dry", "--json")
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert "127.0.0.9 (Could not connect" in json.loads(dry.stdout)["error"]


# --- 5 and 8 on a host: apply shows its reasons, fails loudly, undo lists ------------


@pytest.mark.sandbox
def test_5_8_apply_shows_reasons_and_exits_4_when_verify_fails_undo_lists(
    sandbox: SandboxFactory,
) -> None:
    data = {"gotune_users": ["dev"], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1}
    box = sandbox(1, data=[data])
    host = box.hosts[0]
    host.add_user("dev")
    # No Go for dev (removed inside this host only): verify must fail, and say why.
    sh(host, "rm -rf /usr/bin/go /usr/local/bin/go /usr/local/go")
    dry = gotune("apply", str(box.inventory), "--dry")
    assert dry.returncode == 0, dry.stderr
    assert "change dev: GOCACHE = /var/cache/gotune/tmpfs/dev/go-build [tmpfs]" in dry.stdout
    assert "GOCACHE on tmpfs:" in dry.stdout  # the reason, before anything is asked
    assert "no go found" in dry.stdout  # finding 7's warning
    # Beside a host that cannot be reached, a dry run still shows this one's changes, and
    # exits 1 as the real run would.
    mixed = box.inventory.with_name("mixed.py")
    mixed.write_text(box.inventory.read_text() + "unreachable = [('127.0.0.9', {'ssh_port': 1})]\n")
    both = gotune("apply", str(mixed), "--dry", "--json")
    assert both.returncode == 1, both.stdout + both.stderr
    hosts = json.loads(both.stdout)["hosts"]
    assert not hosts["127.0.0.9"]["ok"] and hosts["sbx1"]["would_change"], hosts
    out = gotune("apply", str(box.inventory), "--yes")
    assert out.returncode == 4, out.stdout + out.stderr
    assert "sbx1: verify FAIL:" in out.stdout and "go not found" in out.stdout
    undo = gotune("undo", str(box.inventory), "--yes")
    assert undo.returncode == 0, undo.stderr
    assert "sbx1: restores" in undo.stdout
    assert "  mount     /var/cache/gotune/tmpfs/dev (unmounted)" in undo.stdout
    assert sh(host, "test -e /var/lib/gotune || echo gone") == "gone\n"
