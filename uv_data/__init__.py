"""UV assets of the built-in synthetic model at 256 x 256 (written by `prn-prep uv-data`).

Regenerate with `prn-prep uv-data --out uv_data` after a change of the
generator; a test checks that these files equal a fresh regeneration.
"""

from importlib.resources import files
from pathlib import Path


def builtin_uv_dir() -> Path:
    """The folder holding the built-in model's UV assets."""
    return Path(str(files(__name__)))
