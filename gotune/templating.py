"""The jinja2 environments: every template gotune renders comes from one of these two.

Templates are package data (``gotune/templates``, the checkout's ``templates/``),
read through ``importlib.resources``, so an installed wheel serves them as a
checkout does. ``text_environment`` renders what lands on a host (shell
scripts, systemd units, env and cron files); ``html_environment`` renders pages.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

import jinja2
from jinja2.loaders import split_template_path

TEMPLATES = resources.files("gotune") / "templates"


def _source(name: str) -> tuple[str, str, None] | None:
    """Template ``name``: its text and where it was read (for tracebacks); None if absent.

    Packaged templates never change while gotune runs: no up-to-date check.
    """
    resource = TEMPLATES
    for part in split_template_path(name):  # refuses "..": nothing outside the folder
        resource = resource / part
    if not resource.is_file():
        return None
    return resource.read_text(encoding="utf-8"), str(resource), None


def _environment(autoescape: bool, **options: Any) -> jinja2.Environment:
    # StrictUndefined: a value a template names but nobody passed is an error,
    # never an empty string in a unit file or a page.
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_source),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,  # noqa: S701 - on for HTML; host files are not HTML
        **options,
    )


# A newline in a value would start a new line of a unit file or a crontab: a setting, a job.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(value: Any, where: str) -> str:
    text = str(value)
    if _CONTROL.search(text):
        raise ValueError(f"{text!r}: a control character (a newline) cannot go into {where}")
    return text


def unit_value(value: Any) -> str:
    """``value`` for a line of a systemd unit: ``%`` doubled (systemd expands %-specifiers
    in most settings, ExecStart and Description among them); a control character or a
    backslash (systemd unescapes C escapes in commands) is refused."""
    text = _one_line(value, "a systemd unit")
    if "\\" in text:
        raise ValueError(f"{text!r}: a backslash cannot go into a systemd unit")
    return text.replace("%", "%%")


def cron_value(value: Any) -> str:
    """``value`` for a crontab line: ``%`` escaped (cron turns a bare one into a newline and
    feeds what follows to the command's stdin); a control character is refused."""
    return _one_line(value, "a crontab").replace("%", "\\%")


@functools.cache
def text_environment() -> jinja2.Environment:
    """For files written to hosts: no escaping, every byte of the template kept; the
    ``unit`` and ``cron`` filters make a value safe for one line of a unit or a crontab."""
    env = _environment(autoescape=False, keep_trailing_newline=True)
    env.filters["unit"] = unit_value
    env.filters["cron"] = cron_value
    return env


@functools.cache
def html_environment() -> jinja2.Environment:
    """For HTML pages: every value is escaped as it is written into the page.

    Block tags leave no line of their own (HTML does not care, and the templates
    stay indented for reading); ``tojson`` keeps a value that is not JSON as its
    string rather than failing the page.
    """
    env = _environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": str}
    return env
