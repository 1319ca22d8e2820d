"""The built-in synthetic model: generated on first use and cached per machine.

A BFM-sized basis is a few hundred MB, so it is never shipped; it is made
deterministically from (generator version, vertex count, seed) in seconds.
Cache root: $PRN_CACHE_DIR, else $XDG_CACHE_HOME/prn, else ~/.cache/prn.
"""

import os
from pathlib import Path

from prn.pipeline.synthetic.face_model import make_synthetic_model
from prn.rendering.morphable.bfm import MODEL_FILE, save_morphable_model
from prn.rendering.util.atomic import atomic_directory

# Bump when the generator's output changes, so stale caches are not reused.
GENERATOR_VERSION = 3
DEFAULT_VERTICES = 50_000
DEFAULT_SEED = 0


def cache_root() -> Path:
    if os.environ.get("PRN_CACHE_DIR"):
        return Path(os.environ["PRN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prn"


def write_synthetic_model(folder, n_vertices=DEFAULT_VERTICES, seed=DEFAULT_SEED) -> Path:
    """Generate the synthetic model and write it as a model folder."""
    save_morphable_model(folder, make_synthetic_model(n_vertices=n_vertices, seed=seed))
    return Path(folder)


def builtin_model_dir(n_vertices=DEFAULT_VERTICES, seed=DEFAULT_SEED) -> Path:
    """The cached model folder of the built-in model, generated if absent."""
    folder = cache_root() / f"synthetic-v{GENERATOR_VERSION}-n{n_vertices}-s{seed}"
    if not (folder / MODEL_FILE).is_file():
        with atomic_directory(folder) as tmp:
            write_synthetic_model(tmp, n_vertices, seed)
    return folder
