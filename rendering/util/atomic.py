"""Write files under a temporary name and rename them into place.

A crash, a full disk or a bad input never leaves a half-written output under
its final name: readers see the old file or the complete new one.
"""

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import numpy as np

# In every temporary file's name, so that a clean-up removes only what this tool wrote
# (prn.pipeline.stage.remove_stale_temporaries), never a file of the user's named alike.
TEMPORARY_MARK = "prn"


def missing_folders(folder) -> list:
    """`folder` and those of its parents that do not exist yet, deepest first (what a mkdir of it would make)."""
    missing = []
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_empty(folders):
    """Remove the folders (deepest first, as missing_folders gives them) that are empty, up to the first that is not."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def all_or_nothing(folder):
    """Yield a list for the caller to add each file it writes into `folder`; when the block raises, those files
    and the folders it made (`folder` and parents that did not exist) are removed: no output without its parts."""
    made = missing_folders(folder)
    written = []
    try:
        yield written
    except BaseException:
        for path in written:
            Path(path).unlink(missing_ok=True)
        remove_empty(made)
        raise


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (not yet created); on success rename it to `path`.

    On any exception the temporary file is removed and `path` is untouched.
    An OS error that names no file (a full disk met by write or close, or
    h5py's multi-line report of one) is raised again as OSError(errno,
    reason, path), naming `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{TEMPORARY_MARK}.tmp"
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        # The clean-up must not hide the first error (e.g. a read-only folder fails both).
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno and error.filename in (None, str(tmp), tmp):
            raise OSError(error.errno, os.strerror(error.errno), str(path)) from error
        raise


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary folder beside `path`; on success it becomes `path`.

    For folders made whole by one writer, such as a cache entry. If another
    process created `path` meanwhile, its folder is kept and ours discarded
    (both hold the same content). On any exception the temporary folder is
    removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_png(path, image):
    """Write an (h, w, 3) RGB or (h, w) grey uint8 image as PNG, atomically."""
    _write_encoded(path, image, ".png", [])


def write_jpeg(path, image, quality=90):
    """Write an (h, w, 3) RGB or (h, w) grey uint8 image as JPEG (quality 0-100), atomically."""
    import cv2  # only the writers of pictures need it

    _write_encoded(path, image, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(quality)])


def _write_encoded(path, image, suffix, parameters):
    import cv2  # only the writers of pictures need it

    image = np.asarray(image)
    ok, encoded = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image,
                               parameters)
    if not ok:
        raise OSError(f"{path}: {suffix[1:].upper()} encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
