"""Render the jinja2 templates in the checkout's ``templates/`` on the control machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=False,  # noqa: S701 - shell, unit and env files, not HTML
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def render(name: str, **values: Any) -> str:
    """The template ``name`` rendered with ``values`` (a missing value is an error)."""
    return _env.get_template(name).render(**values)
