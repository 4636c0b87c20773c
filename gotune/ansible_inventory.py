"""Ansible inventories (INI or YAML) as pyinfra inventories, read by ansible-core itself.

Teams that already keep their machines in an Ansible inventory roll gotune out from it
unchanged: ``gotune rollout hosts.ini`` (or ``hosts.yml``, and every other command).
The file is parsed by Ansible's own ``InventoryManager`` and its variables resolved by
its ``VariableManager`` (groups and children, ``[group:vars]``, ``group_vars/`` and
``host_vars/`` beside the file, Ansible's precedence), in a child process, so it means
the same to gotune as to ``ansible-playbook``; gotune writes no parser of its own.
ansible-core is an optional dependency: ``pip install 'gotune[ansible]'``.

Ansible's connection variables become pyinfra's (``CONNECTION_VARS``); ``gotune_*``
variables are gotune's settings, as in a pyinfra inventory; other variables ride along
as host data, and Ansible's own (``ansible_*`` it computes or pyinfra has no use for,
``inventory_hostname`` ...) are left out. Values are taken as written: Jinja2 in a
variable is not rendered.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from gotune.errors import GotuneError

SUFFIXES = (".ini", ".yml", ".yaml")
# Seconds for ansible-core to read an inventory (its start-up is about half a second).
READ_TIMEOUT_S = 120
# Ansible's connection variables -> pyinfra's host data (the old ansible_ssh_* spellings too).
CONNECTION_VARS = {
    "ansible_host": "ssh_hostname", "ansible_ssh_host": "ssh_hostname",
    "ansible_port": "ssh_port", "ansible_ssh_port": "ssh_port",
    "ansible_user": "ssh_user", "ansible_ssh_user": "ssh_user",
    "ansible_ssh_private_key_file": "ssh_key",
    "ansible_password": "ssh_password", "ansible_ssh_pass": "ssh_password",
    "ansible_become": "_sudo", "ansible_become_user": "_sudo_user",
}  # fmt: skip
# pyinfra data that must be a number or a true/false, whatever type the INI file gave.
_INTS, _BOOLS = frozenset({"ssh_port"}), frozenset({"_sudo"})
# Variables Ansible computes for every host: facts about the inventory, not host data.
MAGIC_VARS = frozenset({
    "inventory_file", "inventory_dir", "inventory_hostname", "inventory_hostname_short",
    "group_names", "groups", "omit", "playbook_dir",
})  # fmt: skip
VAULT_HINT = (" (gotune decrypts Ansible Vault values with Ansible's own settings: "
              "ANSIBLE_VAULT_PASSWORD_FILE, or vault_password_file in ansible.cfg)")
# Ansible's own settings for how it reads inventories: the two file formats only (no
# scripts run, no host lists guessed) and a file it cannot parse is an error, not a warning.
ANSIBLE_ENV = {"ANSIBLE_INVENTORY_ENABLED": "ini,yaml", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
               "ANSIBLE_LOCAL_TEMP": tempfile.gettempdir()}  # fmt: skip


def is_ansible(spec: str) -> bool:
    """True for an inventory that names an Ansible INI or YAML file."""
    return Path(spec).suffix.lower() in SUFFIXES


def _plain(value: Any) -> Any:
    """Ansible's tagged str/int/list/dict values as plain Python ones."""
    return json.loads(json.dumps(value, default=str))


def _bool(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def host_data(variables: dict[str, Any]) -> dict[str, Any]:
    """pyinfra host data from one host's resolved Ansible variables.

    + variables: ``VariableManager.get_vars(host=...)``
    """
    data: dict[str, Any] = {}
    for key, value in variables.items():
        if key in MAGIC_VARS or (key.startswith("ansible_") and key not in CONNECTION_VARS):
            continue
        name = CONNECTION_VARS.get(key, key)
        try:  # an encrypted value is decrypted here; a wrong one fails here
            plain = _plain(value)
            data[name] = (int(plain) if name in _INTS else
                          _bool(plain) if name in _BOOLS else plain)  # fmt: skip
        except Exception as exc:  # whatever Ansible's value types raise: name the variable
            text = " ".join(str(exc).split()) or type(exc).__name__
            hint = VAULT_HINT if "vault" in text.lower() else ""
            raise GotuneError(f"{key}: {text}{hint}") from None
    return data


_PLUGIN_FAILED = re.compile(r"\[WARNING\]: Failed to parse inventory with '(\w+)' plugin: (.*)")


def _first_cause(text: str, path: str = "") -> str | None:
    """The line of Ansible's warnings that says what is wrong with the file: the YAML
    plugin's for a .yml/.yaml file, the INI plugin's otherwise (each plugin in turn
    tries the file, and the INI one's complaint about YAML helps no one)."""
    causes: dict[str, str] = {}
    for line in text.splitlines():
        if m := _PLUGIN_FAILED.match(line):
            causes.setdefault(m.group(1), m.group(2).removeprefix("Failed to parse inventory:"))
        elif line.startswith("Failed to parse inventory:"):
            causes.setdefault("", line.removeprefix("Failed to parse inventory:"))
    want = "yaml" if path.endswith((".yml", ".yaml")) else "ini"
    cause = causes.get(want) or next(iter(causes.values()), None)
    return cause.strip() if cause else None


def read(path: str) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(name, pyinfra host data, groups) per host of an Ansible inventory, in its order.

    Runs ansible-core in this process: call it where the standard library is not
    gevent-patched (``load`` runs it in a child process).

    + path: the inventory file (its group_vars/ and host_vars/ are read too)
    """
    for key, value in ANSIBLE_ENV.items():
        os.environ.setdefault(key, value)
    try:
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager
    except ImportError:
        raise GotuneError(f"reading the Ansible inventory {path} needs ansible-core: "
                          "pip install 'gotune[ansible]'") from None
    warnings = io.StringIO()
    loader = DataLoader()
    hosts = []
    try:
        with contextlib.redirect_stderr(warnings), contextlib.redirect_stdout(warnings):
            _vault_secrets(loader)
            manager = InventoryManager(loader=loader, sources=[path])
            variables = VariableManager(loader=loader, inventory=manager)
            for h in manager.get_hosts():
                try:
                    data = host_data(variables.get_vars(host=h, include_hostvars=False))
                except GotuneError as exc:
                    raise GotuneError(f"cannot read Ansible inventory {path}: host {h.name}, "
                                      f"{exc}") from None
                hosts.append((h.name, data, [g.name for g in h.get_groups() if g.name != "all"]))
    except (AnsibleError, ValueError, TypeError) as exc:
        cause = _first_cause(warnings.getvalue(), path) or " ".join(str(exc).split())
        hint = VAULT_HINT if "vault" in cause.lower() else _ini_header_problem(path)
        raise GotuneError(f"cannot read Ansible inventory {path}: {cause}{hint}") from None
    return hosts


def _vault_secrets(loader: Any) -> None:
    """Give the loader the vault passwords ``ansible-playbook`` would use without asking:
    the password files of ANSIBLE_VAULT_PASSWORD_FILE / ANSIBLE_VAULT_IDENTITY_LIST or
    ansible.cfg. With none, an encrypted value fails when read (named, with VAULT_HINT)."""
    from ansible import constants
    from ansible.cli import CLI

    files = [constants.DEFAULT_VAULT_PASSWORD_FILE] if constants.DEFAULT_VAULT_PASSWORD_FILE else []
    secrets = CLI.setup_vault_secrets(loader, vault_ids=constants.DEFAULT_VAULT_IDENTITY_LIST,
                                      vault_password_files=files, ask_vault_pass=False,
                                      auto_prompt=False)  # fmt: skip
    loader.set_vault_secrets(secrets)


_SECTION = re.compile(r"\[[^\]]+\]\s*([#;].*)?")


def _ini_header_problem(path: str) -> str:
    """Where an INI file has a section header Ansible cannot read (its own message only
    says "not enough values to unpack"), as text to add to that message; "" if none."""
    if not path.lower().endswith(".ini"):
        return ""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            text = line.strip()
            if text.startswith("[") and not _SECTION.fullmatch(text):
                return f" (line {number}: {text[:60]!r} is not a [section] header)"
    return ""


def load(path: str) -> Any:
    """A pyinfra Inventory from an Ansible INI or YAML inventory file.

    ansible-core reads it in a child process (``python -m gotune.ansible_inventory``):
    gotune's process is gevent-patched for pyinfra, which Ansible's code does not expect.

    + path: the inventory file
    """
    from pyinfra.api import Inventory

    out = subprocess.run([sys.executable, "-m", "gotune.ansible_inventory", path],
                         capture_output=True, text=True, timeout=READ_TIMEOUT_S)  # fmt: skip
    try:
        doc = json.loads(out.stdout)
    except ValueError:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise GotuneError(f"cannot read Ansible inventory {path}: {tail}") from None
    if "error" in doc:
        raise GotuneError(str(doc["error"]))
    groups: dict[str, list[str]] = {}
    for name, _data, host_groups in doc["hosts"]:
        for group in host_groups:
            groups.setdefault(group, []).append(name)
    return Inventory(([(name, data) for name, data, _ in doc["hosts"]], {}),
                     **{g: (members, {}) for g, members in groups.items()})


def main(argv: list[str]) -> int:
    """``python -m gotune.ansible_inventory FILE``: the hosts as JSON (or an error)."""
    try:
        print(json.dumps({"hosts": read(argv[0])}))
    except GotuneError as exc:
        print(json.dumps({"error": str(exc)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
