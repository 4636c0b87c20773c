"""Load a pyinfra inventory file and connect to its hosts, with one-line errors.

gotune uses pyinfra's own inventory loader (the one behind ``pyinfra INV ...``)
so an inventory means the same thing to ``gotune`` and to plain ``pyinfra``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.state import BaseStateCallback
from pyinfra.context import ctx_config, ctx_host, ctx_inventory, ctx_state

from gotune.errors import GotuneError

if TYPE_CHECKING:
    from gotune.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INVENTORY = REPO_ROOT / "inventories" / "local.py"
T = TypeVar("T")


def default_inventory() -> str:
    """The checkout's ``inventories/local.py``, or plain ``@local`` when not in a checkout."""
    return str(DEFAULT_INVENTORY) if DEFAULT_INVENTORY.is_file() else "@local"


def load_inventory(spec: str | None) -> Inventory:
    """Build a pyinfra Inventory from a file path (or ``@local``, ``host1,host2``).

    + spec: a pyinfra inventory file, an Ansible one (``.ini``, ``.yml``: see
      ``gotune.ansible_inventory``), ``@local``, a comma-separated host list; None for
      the default
    """
    # pyinfra's CLI package gevent-patches the process on import: it must happen here,
    # first, whatever the inventory (an import of it later, mid-run, breaks import locks).
    import pyinfra_cli  # noqa: F401

    from gotune.ansible_inventory import is_ansible
    from gotune.ansible_inventory import load as load_ansible

    spec = spec or default_inventory()
    looks_like_file = spec.endswith(".py") or "/" in spec or is_ansible(spec)
    if looks_like_file and not Path(spec).is_file():
        raise GotuneError(f"cannot read inventory {spec}: no such file")
    if looks_like_file:
        try:
            Path(spec).read_bytes()
        except OSError as exc:
            raise GotuneError(f"cannot read inventory {spec}: {exc.strerror}") from exc
    inventory = load_ansible(spec) if is_ansible(spec) else _pyinfra_inventory(spec)
    if len(inventory) == 0:
        raise GotuneError(f"inventory {spec} has no hosts")
    return inventory


def _pyinfra_inventory(spec: str) -> Inventory:
    """pyinfra's own loader: an inventory file (Python), ``@local``, ``host1,host2``."""
    from pyinfra_cli.inventory import make_inventory

    # Inventory and group-data files may read pyinfra's context (as under the
    # pyinfra CLI), so a State must be current while they are executed.
    if not ctx_state.isset():
        ctx_state.set(State(check_for_changes=False))
    if "," in spec and not Path(spec).exists() and not all(n.strip() for n in spec.split(",")):
        raise GotuneError(f"inventory {spec!r} has an empty host name")
    try:
        # pyinfra prints warnings for odd inventories; keep stdout clean for --json.
        with contextlib.redirect_stdout(io.StringIO()):
            inventory: Inventory = make_inventory(spec, cwd=str(Path.cwd()))
    except Exception as exc:  # the inventory is user Python: any error is theirs to fix
        if _empty_name(exc):
            raise GotuneError(f"inventory {spec} has an empty host name") from exc
        raise GotuneError(f"cannot read inventory {spec}: {_describe(exc)}") from exc
    if any(not host.name.strip() for host in inventory):
        raise GotuneError(f"inventory {spec} has an empty host name")
    return inventory


def _inner(exc: BaseException) -> BaseException:
    """The error an inventory file raised (pyinfra wraps errors from user files)."""
    inner: BaseException = getattr(exc, "exception", None) or exc.__cause__ or exc
    return inner


def _empty_name(exc: BaseException) -> bool:
    """Whether pyinfra failed on a host name "" (it reads the name's first character)."""
    inner = _inner(exc)
    frames = traceback.extract_tb(inner.__traceback__)
    return isinstance(inner, IndexError) and bool(frames) and (
        frames[-1].name == "make_hosts_and_groups"
    )


def _describe(exc: BaseException) -> str:
    """One line for an error raised while executing an inventory file."""
    inner = _inner(exc)
    if isinstance(inner, SyntaxError):
        # The file may be a group-data file beside the inventory, not the inventory.
        where = f" of {inner.filename}" if inner.filename and inner.filename != "<string>" else ""
        return f"syntax error on line {inner.lineno}{where}"
    try:
        text = str(inner)
    except Exception:
        text = ""
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__


def make_state(inventory: Inventory, **config: Any) -> State:
    """A pyinfra State for the inventory, set as pyinfra's current context.

    + config: overrides of pyinfra ``Config`` fields (``PARALLEL``, ``CONNECT_TIMEOUT`` ...)
    """
    cfg = Config(**config)
    state = State(check_for_changes=False)
    state.cwd = str(Path.cwd())
    ctx_state.set(state)
    ctx_config.set(cfg)
    ctx_inventory.set(inventory)
    state.init(inventory, cfg)
    return state


class _ConnectErrors(BaseStateCallback):
    """Keeps why each host could not be connected to (pyinfra only logs it)."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def host_connect_error(self, state: State, host: Any, error: Any) -> None:  # type: ignore[override]
        text = error.args[0] if getattr(error, "args", None) else str(error)
        self.errors[host.name] = " ".join(str(text).split()) or type(error).__name__


@dataclass
class Connection:
    """A connected inventory: pyinfra's State, and why each unreachable host was not reached."""

    state: State
    unreachable: dict[str, str] = field(default_factory=dict)

    @property
    def hosts(self) -> list[Any]:
        """The connected hosts, in inventory order."""
        return [h for h in self.state.inventory if h in self.state.activated_hosts]

    def each(
        self, work: Callable[[Any], T], timeout: float
    ) -> tuple[dict[str, T], dict[str, BaseException]]:
        """Run ``work(host)`` on every connected host at once (pyinfra's greenlet pool),
        inside that host's context; (results, host name -> the error it raised)."""
        return each_host(self.hosts, work, timeout)


def each_host(
    hosts: Iterable[Any], work: Callable[[Any], T], timeout: float
) -> tuple[dict[str, T], dict[str, BaseException]]:
    """Run ``work(host)`` for every host at once, each in a greenlet of its State's pool
    and inside that host's context; (results, host name -> the error it raised).

    + hosts: connected pyinfra Hosts (of one State)
    + work: what to do on one host; an exception it raises is that host's error
    + timeout: seconds to wait for each host before calling it stuck (``TimeoutError``)
    """

    def job(host: Any) -> tuple[bool, Any]:
        # Errors are returned, not raised: gevent would print a raised one's traceback.
        try:
            with ctx_host.use(host):
                return True, work(host)
        except Exception as exc:
            return False, exc

    import gevent

    jobs = {h.name: h.state.pool.spawn(job, h) for h in hosts}
    # Greenlets on pyinfra's pool run while we wait; they all started together, so one
    # deadline for all of them (not ``timeout`` each, one after the other).
    gevent.joinall(list(jobs.values()), timeout=timeout)
    results: dict[str, T] = {}
    failed: dict[str, BaseException] = {}
    for name, greenlet in jobs.items():
        if not greenlet.ready():
            greenlet.kill(block=False)
            failed[name] = TimeoutError(f"no answer within {timeout:.0f} s")
            continue
        ok, value = greenlet.value
        if ok:
            results[name] = value
        else:
            failed[name] = value
    return results, failed


def describe_error(exc: BaseException | None) -> str:
    """One line for an error raised while working on a host."""
    inner = getattr(exc, "exception", None) or exc
    if isinstance(inner, GotuneError):
        return str(inner)
    text = " ".join(str(inner).split()) if inner is not None else ""
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__


@contextlib.contextmanager
def connected(spec: str | None, **config: Any) -> Iterator[Connection]:
    """Load, connect to every host, and disconnect at the end.

    Hosts that cannot be reached are left out of ``state.activated_hosts`` and listed
    in ``Connection.unreachable`` with pyinfra's reason (the SSH error); if none can
    be reached, a one-line error names them all with their reasons.
    """
    with connect(load_inventory(spec), **config) as conn:
        yield conn


def validated(spec: str | None, user: str | None) -> tuple[Inventory, dict[str, Settings]]:
    """The inventory, loaded once, and every host's settings; the first problem raises.

    Connect to this very inventory (``connect``): an inventory file is code, and may
    answer differently each time it runs, so the hosts validated are the hosts used.

    + user: the developer user for hosts whose data sets no ``gotune_users``
    """
    from gotune.settings import validate_inventory

    inventory = load_inventory(spec)
    return inventory, validate_inventory(inventory, user)


@contextlib.contextmanager
def connect(
    inventory: Inventory, require_any: bool = True, **config: Any
) -> Iterator[Connection]:
    """Connect to every host of a loaded inventory; disconnect at the end.

    + inventory: a pyinfra Inventory (``load_inventory``, or a part of one)
    + require_any: raise a one-line error when no host can be reached; False yields a
      Connection with no hosts and every reason in ``unreachable``
    + config: overrides of pyinfra ``Config`` fields (``PARALLEL``, ``CONNECT_TIMEOUT`` ...)
    """
    try:
        state = make_state(inventory, **config)
    except PyinfraError as exc:  # host data pyinfra's connectors refuse (a wrong type)
        raise GotuneError(f"cannot use the inventory: {' '.join(str(exc).split())}") from None
    errors = _ConnectErrors()
    state.add_callback_handler(errors)
    # pyinfra logs connection failures itself; gotune reports them as one line below.
    logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
    # So does paramiko, with a traceback (a port that answers but is not SSH): its
    # transport thread logs it, and without a handler Python prints it to stderr.
    paramiko = logging.getLogger("paramiko")
    if not paramiko.handlers:
        paramiko.addHandler(logging.NullHandler())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            connect_all(state)
    except PyinfraError as exc:
        if state.activated_hosts:
            raise GotuneError(f"cannot connect: {exc}") from exc
        if require_any:
            raise GotuneError(f"cannot connect to any host: {_reasons(inventory, errors)}") from exc
    if not state.activated_hosts and require_any:
        raise GotuneError(f"cannot connect to any host: {_reasons(inventory, errors)}")
    for host in state.activated_hosts:
        _lost_connection_is_ssh_error(host)
    unreachable = {
        h.name: errors.errors.get(h.name, "cannot connect")
        for h in inventory
        if h not in state.activated_hosts
    }
    try:
        yield Connection(state, unreachable)
    finally:
        with contextlib.suppress(Exception):
            disconnect_all(state)


# The connector methods that talk to the host over its connection.
_CONNECTOR_CALLS = ("run_shell_command", "put_file", "get_file")


def _lost_connection_is_ssh_error(host: Any) -> None:
    """Make a connection that drops mid-run fail this host alone.

    pyinfra fails a host whose command raises ``OSError``, ``TimeoutError`` or paramiko's
    ``SSHException``; but paramiko raises ``EOFError`` when the transport is already gone
    as it opens a channel (paramiko#385, pyinfra#1220), which pyinfra does not catch: it
    stops the run of every host, with a greenlet's traceback. This host's connector raises
    an ``SSHException`` instead.
    """
    from paramiko import SSHException

    connector = host.connector

    def guarded(call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except EOFError as exc:
                raise SSHException(f"{host.name}: the SSH connection was lost") from exc

        return run

    for name in _CONNECTOR_CALLS:
        if hasattr(connector, name):
            setattr(connector, name, guarded(getattr(connector, name)))


def _reasons(inventory: Inventory, errors: _ConnectErrors) -> str:
    return "; ".join(f"{h.name} ({errors.errors.get(h.name, 'no answer')})" for h in inventory)
