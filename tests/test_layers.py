"""Kefu's packages import only downwards: a reader of ``kefu/`` sees the layers without a back-edge.

models → worktime → notifications → tasks → (the Prefect adapter's parts flows use) → flows →
deployments → (the Prefect adapter's worker and REST client) → intake → desk → cli. Every ``import`` in
``kefu/`` is read (module level and inside functions alike: a lazy import is still a dependency) and each one
pointing to a higher layer is named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kefu

ROOT = Path(kefu.__file__).parent

# Lowest first. A module belongs to the longest prefix listed; the adapter (kefu.engine) is split: the parts
# a flow calls while it runs (waiting for a person, the step kit, the run contract, Prefect's private names)
# sit below the flows, the worker that executes the deployments' flows sits above them.
LAYERS: list[tuple[str, ...]] = [
    ("kefu.settings",),
    ("kefu.models",),
    ("kefu.worktime",),
    ("kefu.notifications",),
    ("kefu.tasks",),
    ("kefu.engine",),
    ("kefu.flows",),
    ("kefu.deployments",),
    ("kefu.engine.worker", "kefu.engine.rest"),
    ("kefu.intake",),
    ("kefu.desk",),  # the operators' entrance: reuses the intake's edge
    ("kefu.cli", "kefu.__main__"),
]
UNLAYERED = {"kefu", "kefu.migrations"}  # the package itself; migrations load the models by design


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("kefu.")}


def test_no_module_imports_from_a_higher_layer() -> None:
    back_edges = []
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        if module in UNLAYERED or module.startswith("kefu.migrations"):
            continue
        own = layer_of(module)
        assert own is not None, f"{module} is in no layer: add it to LAYERS"
        for imported in sorted(imports_of(path, module)):
            other = layer_of(imported)
            if other is not None and other > own:
                back_edges.append(f"{module} imports {imported}")
    assert not back_edges, "imports against the layers:\n" + "\n".join(back_edges)


def test_the_layer_check_sees_a_back_edge() -> None:
    """The check itself: a model importing a flow would be named."""
    assert layer_of("kefu.flows.complaint_case") > layer_of("kefu.models.complaints")  # type: ignore[operator]
    assert layer_of("kefu.engine.worker") > layer_of("kefu.deployments")  # type: ignore[operator]
    assert layer_of("kefu.engine.steps") < layer_of("kefu.flows")  # type: ignore[operator]
