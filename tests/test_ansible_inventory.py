"""Ansible inventories (INI and YAML) read by ansible-core, as gotune sees them.

The files are what a team already keeps for ansible-playbook: groups and children,
``[group:vars]``, a ``group_vars/`` directory, Ansible's connection variables. On
sandbox hosts, a rollout from an INI file and facts from a YAML file reach them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SandboxFactory
from tests.test_apply import REPO

pytest.importorskip("ansible", reason="gotune[ansible] (ansible-core) is not installed")

INI = """\
web1 ansible_host=10.0.0.1 ansible_port=2222

[builders]
b1 ansible_host=10.0.0.2 ansible_user=ci ansible_ssh_private_key_file=/k gotune_users='["dev"]'
b2

[builders:vars]
gotune_tmpfs_max_gib=2
ansible_become=true

[all:vars]
gotune_mirror_enabled=True
"""

YAML = """\
all:
  vars:
    gotune_users: [dev]
  children:
    builders:
      hosts:
        b1: {ansible_host: 10.0.0.2, ansible_port: 22}
        b2:
      vars:
        gotune_tmpfs_max_gib: 2
"""


def hosts_of(path: Path) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """name -> (groups, data), as gotune.inventory.load_inventory gives them (in a child
    process: pyinfra's inventory loader is not imported in the test process)."""
    code = ("import json, sys; from gotune.inventory import load_inventory; "
            "inv = load_inventory(sys.argv[1]); "
            "print(json.dumps({h.name: [sorted(h.groups), h.data.dict()] for h in inv}))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {name: (groups, data) for name, (groups, data) in json.loads(out.stdout).items()}


def test_an_ini_inventory_gives_groups_group_vars_and_pyinfra_connection_data(
    tmp_path: Path,
) -> None:
    (tmp_path / "hosts.ini").write_text(INI)
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "builders.yml").write_text("gotune_wear_warn_percent: 70\n")
    hosts = hosts_of(tmp_path / "hosts.ini")
    assert list(hosts) == ["web1", "b1", "b2"]
    assert hosts["web1"] == (["ungrouped"], {"gotune_mirror_enabled": True,
                                             "ssh_hostname": "10.0.0.1", "ssh_port": 2222})
    groups, b1 = hosts["b1"]
    assert groups == ["builders"]
    assert b1 == {"gotune_mirror_enabled": True, "gotune_tmpfs_max_gib": 2, "_sudo": True,
                  "gotune_wear_warn_percent": 70, "ssh_hostname": "10.0.0.2", "ssh_user": "ci",
                  "ssh_key": "/k", "gotune_users": ["dev"]}  # fmt: skip
    assert hosts["b2"][1]["gotune_wear_warn_percent"] == 70


def test_a_yaml_inventory_reads_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(YAML)
    hosts = hosts_of(tmp_path / "hosts.yml")
    assert hosts["b1"] == (["builders"], {"gotune_users": ["dev"], "gotune_tmpfs_max_gib": 2,
                                          "ssh_hostname": "10.0.0.2", "ssh_port": 22})
    assert hosts["b2"][1] == {"gotune_users": ["dev"], "gotune_tmpfs_max_gib": 2}


def test_an_inventory_ansible_cannot_parse_is_one_line_naming_the_problem(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "hosts.ini"
    bad.write_text("[builders\nb1 ansible_host\n")
    out = subprocess.run([sys.executable, "-m", "gotune", "plan", str(bad), "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"gotune: cannot read Ansible inventory {bad}: ")
    # Ansible's own complaint ("not enough values to unpack") does not say where.
    assert "(line 1: '[builders' is not a [section] header)" in out.stderr
    # A YAML file gets YAML's complaint, not the INI plugin's (which tries it first).
    bad = tmp_path / "hosts.yml"
    bad.write_text("all:\n  hosts: [b1, b2\n")
    out = subprocess.run([sys.executable, "-m", "gotune", "plan", str(bad), "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "YAML parsing failed" in json.loads(out.stdout)["error"], out.stdout


def test_vault_values_decrypt_with_ansibles_password_file_or_are_named(
    tmp_path: Path,
) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    def vault(text: str) -> str:
        return VaultLib([("default", VaultSecret(b"s3cret"))]).encrypt(text.encode()).decode()

    # The usual vaulted variable: an SSH password.
    block = "".join(f"        {line}\n" for line in vault("hunter2").splitlines())
    (tmp_path / "hosts.yml").write_text(
        f"all:\n  hosts:\n    b1:\n      ansible_password: !vault |\n{block}")
    # A whole group_vars file encrypted with ansible-vault, too.
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(vault("gotune_tmpfs_max_gib: 3\n"))
    (tmp_path / "pass").write_text("s3cret\n")
    (tmp_path / "wrong").write_text("guess\n")

    def load(password_file: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_VAULT")}
        if password_file:
            env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(tmp_path / password_file)
        return subprocess.run([sys.executable, "-m", "gotune.ansible_inventory",
                               str(tmp_path / "hosts.yml")], capture_output=True, text=True,
                              cwd=REPO, env=env, timeout=120)  # fmt: skip

    out = load("pass")
    assert json.loads(out.stdout)["hosts"] == [
        ["b1", {"ssh_password": "hunter2", "gotune_tmpfs_max_gib": 3}, ["ungrouped"]]]
    for password_file in (None, "wrong"):
        error = json.loads(load(password_file).stdout)["error"]
        assert "ANSIBLE_VAULT_PASSWORD_FILE" in error and "s3cret" not in error, error


def _ansible_lines(box: Any) -> list[str]:
    """The sandbox hosts as INI host lines: Ansible's variables, pyinfra's SSH extras."""
    lines = []
    for host in box.hosts:
        lines.append(
            f"{host.name} ansible_host={host.address} ansible_port={host.port} "
            f"ansible_user=root ansible_ssh_private_key_file={host.key} "
            f"ssh_known_hosts_file={host.known_hosts} ssh_strict_host_key_checking=yes "
            "ssh_allow_agent=False ssh_look_for_keys=False")
    return lines


@pytest.mark.sandbox
def test_a_rollout_from_an_ansible_ini_and_facts_from_yaml_reach_the_hosts(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    box = sandbox(2)
    for host in box.hosts:
        host.add_user("dev")
        host.link_go()
    ini = tmp_path / "fleet.ini"
    ini.write_text("[workstations]\n" + "\n".join(_ansible_lines(box)) + "\n\n"
                   "[workstations:vars]\ngotune_gocache_tmpfs=never\n")
    # Ansible reads a [group:vars] value as a string; a list goes in group_vars/ (YAML).
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "workstations.yml").write_text("gotune_users: [dev]\n")
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "rollout", str(ini), "--waves", "1,100%", "--bench",
         "none", "--yes", "--json"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [w["passed"] for w in doc["waves"]] == [["sbx1"], ["sbx2"]]
    assert Path(doc["state"]) == tmp_path / "fleet.rollout.json"

    yml = tmp_path / "fleet.yml"
    hosts = {h.name: {"ansible_host": h.address, "ansible_port": h.port, "ansible_user": "root",
                      "ansible_ssh_private_key_file": str(h.key),
                      "ssh_known_hosts_file": str(h.known_hosts),
                      "ssh_strict_host_key_checking": "yes", "ssh_allow_agent": False,
                      "ssh_look_for_keys": False} for h in box.hosts}  # fmt: skip
    yml.write_text(json.dumps({"all": {"hosts": hosts, "vars": {"gotune_users": ["dev"]}}}))
    out = subprocess.run([sys.executable, "-m", "gotune", "facts", str(yml), "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)["hosts"]
    assert sorted(facts) == ["sbx1", "sbx2"] and facts["sbx1"]["user"]["name"] == "dev"
