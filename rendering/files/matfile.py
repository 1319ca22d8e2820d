"""MATLAB v5 files, read with one-line errors and written atomically and byte-stably."""

from pathlib import Path

import scipy.io

from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError, first_line


def read_mat(path, description="MATLAB file"):
    """All variables of a .mat file; InputError naming the file when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing ({description})")
    try:
        return scipy.io.loadmat(path)
    except Exception as error:  # scipy raises many types for corrupt files
        raise InputError(f"{path}: not a readable MATLAB file ({first_line(error)})") from None


# scipy stamps the creation time into the 116-byte text header; a fixed text
# makes equal contents give equal bytes.
_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by prn-toolkit".ljust(116)


def write_mat(path, variables: dict) -> None:
    """Write a MATLAB v5 file atomically, byte-identical for identical variables."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        scipy.io.savemat(handle, variables, do_compression=False)
        handle.seek(0)
        handle.write(_MAT_HEADER)
