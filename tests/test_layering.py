"""The layers import only downwards (docs/architecture.md).

collect → facts → plan → apply (operations, deploys) → verify → report: facts know
nothing of plans; plans read only the facts model and the settings; verify reads
the plan stored on the host and never imports deploys or operations. Every import
counts, also one inside a function, so a shortcut fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gotune

PACKAGE = Path(gotune.__file__).parent

# Layer -> the gotune modules it must never import (prefix match).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "facts": ("gotune.plan", "gotune.deploys", "gotune.operations", "gotune.verify",
              "gotune.commands", "gotune.cli", "gotune.planning", "gotune.inventory"),
    "plan": ("gotune.facts.", "gotune.deploys", "gotune.operations", "gotune.verify",
             "gotune.commands", "gotune.cli", "gotune.planning", "gotune.inventory"),
    "operations": ("gotune.deploys", "gotune.verify", "gotune.commands", "gotune.cli",
                   "gotune.planning"),
    "deploys": ("gotune.verify", "gotune.commands", "gotune.cli", "gotune.planning"),
    "verify": ("gotune.deploys", "gotune.operations", "gotune.planning", "gotune.commands"),
}  # fmt: skip
# What the plan may read of the facts layer: the typed document, nothing that runs.
PLAN_MAY_IMPORT = ("gotune.facts.model",)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, those inside functions included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def violations(layer: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for line, module in imports(path):
            if layer == "plan" and module in PLAN_MAY_IMPORT:
                continue
            if module.startswith(FORBIDDEN[layer]):
                found.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downwards(layer: str) -> None:
    assert violations(layer) == []


def test_the_rule_catches_an_import_inside_a_function(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from gotune.deploys.laptop import tune\n")
    assert (2, "gotune.deploys.laptop") in imports(sneaky)


def test_every_component_has_one_name_in_every_layer() -> None:
    """caches, toolchain, numa, mirror, wear, wsl, buildcache: facts, plan, operations, deploys,
    verify checks and templates carry the same name, so one guess finds every part."""
    templates = {p.name.split("-")[0].split(".")[0] for p in (PACKAGE / "templates").glob("*.j2")}
    for component in ("caches", "toolchain", "numa", "mirror", "wear", "wsl", "buildcache"):
        for layer in ("facts", "plan", "operations", "deploys", "verify/checks"):
            assert (PACKAGE / layer / f"{component}.py").is_file(), (layer, component)
        assert component in templates, component
