"""Render gotune's jinja2 templates (``templates/``) on the control machine."""

from __future__ import annotations

from typing import Any

from gotune.templating import text_environment


def render(name: str, **values: Any) -> str:
    """The template ``name`` rendered with ``values`` (a missing value is an error)."""
    return text_environment().get_template(name).render(**values)
