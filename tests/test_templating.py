"""The two jinja2 environments: templates come from the package, escaping only for HTML."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from gotune.templating import html_environment, text_environment

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def test_every_template_in_the_folder_loads_from_the_package() -> None:
    names = sorted(p.name for p in TEMPLATES.glob("*.j2"))
    assert "verify-report.html.j2" in names and "toolchain-profile.sh.j2" in names
    for name in names:
        env = html_environment() if ".html." in name else text_environment()
        assert env.loader is not None
        assert env.loader.get_source(env, name)[0] == (TEMPLATES / name).read_text()


@pytest.mark.parametrize("name", ["../pyproject.toml", "nope.j2", "/etc/passwd"])
def test_a_name_outside_the_templates_is_not_found(name: str) -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        text_environment().get_template(name)


def test_html_is_escaped_and_host_files_are_not() -> None:
    value = "<b>&'\""
    assert html_environment().from_string("{{ v }}").render(v=value) == (
        "&lt;b&gt;&amp;&#39;&#34;")
    assert text_environment().from_string("{{ v }}\n").render(v=value) == value + "\n"
    with pytest.raises(jinja2.UndefinedError):
        text_environment().from_string("{{ missing }}").render()
