"""One run per output folder: a lock file in the folder naming the run that holds it.

FOLDER/.prn-prep.lock holds {"pid": ..., "host": ...} of the holder, written
before the file gets its name, and is removed when the run ends. The holder
keeps an flock on it, which the kernel drops when its process dies, so the
lock of a killed run is free and the next run takes it over. On a file system
without flock (NFS mounted nolock, Lustre without -o flock) a lock whose
process no longer runs on this host counts as free.
"""

import errno
import fcntl
import json
import os
import secrets
import socket
from contextlib import contextmanager, suppress
from pathlib import Path

from prn.rendering.util.errors import InputError

LOCK_FILE = ".prn-prep.lock"
_NO_FLOCK = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)
_held = {}                       # resolved folder -> descriptor of the lock file this process holds


@contextmanager
def output_lock(folder):
    """Hold the lock of `folder` (an existing folder) for the block; reentrant within a process.

    InputError, one line naming the holder's pid and host, when another run
    holds it; OSError naming the lock file when it cannot be written.
    """
    key = Path(folder).resolve()
    if key in _held:
        yield
        return
    path = Path(folder) / LOCK_FILE
    _held[key] = _acquire(Path(folder), path)
    try:
        yield
    finally:
        descriptor = _held.pop(key)
        # A lock file that cannot be removed (the folder turned read-only) is free once closed.
        with suppress(OSError):
            path.unlink()
        os.close(descriptor)


def _acquire(folder, path):
    """The descriptor of our lock file, locked and under its final name."""
    holder = {"pid": os.getpid(), "host": socket.gethostname()}
    ours = folder / f"{LOCK_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        descriptor = os.open(ours, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None
    try:
        try:
            os.write(descriptor, (json.dumps(holder) + "\n").encode())
            flock = _try_flock(descriptor)
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from None
        while not _claim(folder, path, ours, flock):
            pass
    except BaseException:
        os.close(descriptor)
        ours.unlink(missing_ok=True)
        raise
    return descriptor


def _claim(folder, path, ours, flock):
    """Give our file the lock's name if it is free; False when it changed hands meanwhile (try again)."""
    try:
        os.link(ours, path)
    except FileExistsError:
        pass
    else:
        ours.unlink()
        return True
    try:
        theirs = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        if flock:
            free = _try_flock(theirs)
        else:
            free = not _holder_alive(_read_holder(path))
        if not free:
            raise InputError(f"{folder}: in use by another run ({_describe(_read_holder(path))}); "
                             "wait for it to finish or choose another output folder")
        try:
            if not os.path.samestat(os.fstat(theirs), os.stat(path)):
                return False
        except FileNotFoundError:
            return False
        os.replace(ours, path)
        return True
    finally:
        os.close(theirs)


def _try_flock(descriptor):
    """Lock an open file: True; False when another process holds it; None when the file system has no flock."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in _NO_FLOCK:
            return None
        raise
    return True


def _read_holder(path):
    try:
        holder = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _holder_alive(holder):
    """Whether the holder may still run: True unless it is known to be gone from this host."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder):
    return f"pid {holder.get('pid', 'unknown')} on host {holder.get('host', 'unknown')}"
