"""The layout's rules: imports flow cli -> model -> pipeline -> rendering, never back."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A package may import the packages after it in this list, never those before it.
LAYERS = ("cli", "model", "pipeline", "rendering")


def imported_packages(path):
    """The prn top-level packages a module imports (absolute imports; the package uses no relative ones)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "prn" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_flow_one_way(layer):
    above = set(LAYERS[:LAYERS.index(layer) + 1]) - {layer}
    offenders = {str(path.relative_to(REPO)): sorted(imported_packages(path) & above)
                 for path in sorted((REPO / layer).rglob("*.py"))}
    assert {path: names for path, names in offenders.items() if names} == {}
