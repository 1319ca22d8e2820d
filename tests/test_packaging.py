"""The installed layout: one `prn` namespace, no bare top-level modules, a working wheel."""

import subprocess
import sys
import zipfile

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build_dir = tmp_path_factory.mktemp("build-src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(REPO)], check=True, cwd=build_dir, capture_output=True)
    (path,) = out.glob("*.whl")
    return path


def test_wheel_holds_only_the_prn_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"prn"}
    for package in ("rendering", "pipeline", "model", "cli", "uv_data"):
        assert f"prn/{package}/__init__.py" in names
    assert "prn/uv_data/uv_kpt_ind.txt" in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "prn-prep = prn.cli.programs:prn_prep" in entry_points


def test_wheel_imports_and_runs_outside_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import prn.rendering, prn.cli.prep, prn.uv_data; "
            "assert prn.rendering.__file__.startswith(sys.argv[1]), prn.rendering.__file__; "
            "from importlib.resources import files; "
            "print(files('prn.uv_data').joinpath('uv_kpt_ind.txt').read_text().count(' '))")
    result = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0
