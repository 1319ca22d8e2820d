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


# Each file format is read and written by one module: (what its code calls, the owning files).
FORMAT_OWNERS = {
    "HDF5 shards": (("h5py.File(",), ("pipeline/shards/folder.py", "pipeline/shards/writer.py")),
    "checkpoints": (("torch.load(", "torch.save("), ("model/checkpoint.py",)),
    "UV assets": (("np.loadtxt(",), ("rendering/morphable/uv_assets.py",)),
    "MATLAB files": (("scipy.io.loadmat(", "scipy.io.savemat("), ("rendering/files/matfile.py",)),
}


@pytest.mark.parametrize("fmt", FORMAT_OWNERS)
def test_each_format_has_one_owning_module(fmt):
    calls, owners = FORMAT_OWNERS[fmt]
    users = set()
    for layer in LAYERS:
        for path in (REPO / layer).rglob("*.py"):
            code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
            if any(call in code for call in calls):
                users.add(str(path.relative_to(REPO)))
    assert users <= set(owners), f"{fmt} handled outside {owners}: {sorted(users - set(owners))}"


def imported_modules(path):
    """The full names of the prn modules a module imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("prn.")}


# Running and scoring a trained network need nothing of training: these import no prn.model.training module.
INFERENCE = ("model/checkpoint.py", "model/network.py", "model/network_config.py", "model/inference.py",
             "model/views.py", "model/landmarks.py", "model/prediction", "model/evaluation")


def test_inference_imports_nothing_from_training():
    paths = [path for name in INFERENCE for path in ([REPO / name] if name.endswith(".py")
                                                      else sorted((REPO / name).rglob("*.py")))]
    offenders = {str(path.relative_to(REPO)): sorted(name for name in imported_modules(path)
                                                      if name.startswith("prn.model.training"))
                 for path in paths}
    assert len(paths) > len(INFERENCE) and {path: names for path, names in offenders.items() if names} == {}
