"""The built-in synthetic model: generated on first use and cached per machine.

A BFM-sized basis is a few hundred MB, so it is never shipped; it is made
deterministically from (generator version, vertex count, seed) in seconds.
Cache root: $PRN_CACHE_DIR, else $XDG_CACHE_HOME/prn, else ~/.cache/prn.

The folder's files are checked against the checksums written with them
(CHECKSUMS_FILE), once per process: a cache entry truncated, or holding
another model, is made again instead of used.
"""

import json
import os
import shutil
from pathlib import Path

from prn.pipeline.shards import file_checksum
from prn.pipeline.synthetic.face_model import make_synthetic_model
from prn.rendering.morphable.bfm import MODEL_FILE, save_morphable_model
from prn.rendering.util.atomic import atomic_directory
from prn.rendering.util.errors import InputError

# Bump when the generator's output changes, so stale caches are not reused.
GENERATOR_VERSION = 3
DEFAULT_VERTICES = 50_000
MAX_VERTICES = 500_000          # ten times the BFM's 53,490: a 228-component basis of this size is 1.4 GB
DEFAULT_SEED = 0
CHECKSUMS_FILE = "checksums.json"   # {file name: file_checksum} of the generated folder's files
_checked = set()                    # folders found intact in this process


def cache_root() -> Path:
    if os.environ.get("PRN_CACHE_DIR"):
        return Path(os.environ["PRN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prn"


def write_synthetic_model(folder, n_vertices=DEFAULT_VERTICES, seed=DEFAULT_SEED) -> Path:
    """Generate the synthetic model and write it as a model folder."""
    save_morphable_model(folder, make_synthetic_model(n_vertices=n_vertices, seed=seed))
    return Path(folder)


def builtin_face_model_dir(n_vertices=DEFAULT_VERTICES, seed=DEFAULT_SEED) -> Path:
    """The cached model folder of the built-in model, generated if absent, made again if not intact."""
    root = cache_root()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: the model cache folder is a file (set PRN_CACHE_DIR to a folder)")
    folder = root / f"synthetic-v{GENERATOR_VERSION}-n{n_vertices}-s{seed}"
    if folder in _checked:
        return folder
    if not _intact(folder):
        if folder.exists():
            aside = folder.with_name(f".{folder.name}.{os.getpid()}.stale")
            os.replace(folder, aside)
            shutil.rmtree(aside, ignore_errors=True)
        with atomic_directory(folder) as tmp:
            write_synthetic_model(tmp, n_vertices, seed)
            checksums = {path.name: file_checksum(path) for path in sorted(tmp.iterdir())}
            (tmp / CHECKSUMS_FILE).write_text(json.dumps(checksums, indent=1) + "\n")
    _checked.add(folder)
    return folder


def _intact(folder) -> bool:
    """Does the folder hold the model file and exactly the files its checksums list, with those checksums?"""
    try:
        checksums = json.loads((folder / CHECKSUMS_FILE).read_text())
        names = {path.name for path in folder.iterdir()} - {CHECKSUMS_FILE}
    except (OSError, ValueError):
        return False
    if not isinstance(checksums, dict) or MODEL_FILE not in checksums or set(checksums) != names:
        return False
    try:
        return all(file_checksum(folder / name) == expected for name, expected in checksums.items())
    except OSError:
        return False
