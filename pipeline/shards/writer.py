"""Writing one shard: the HDF5 file in the schema's order, then its JSON record beside it, each atomically; and
the check that a shard is finished (its record matches)."""

import errno
import gc
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import h5py
import numpy as np
import xxhash

from prn.pipeline.shards.schema import ATTRIBUTES, BY_NAME, UV_SIZE
from prn.pipeline.shards.settings import shard_attributes
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError, first_line

SHARD_PATTERN = "shard-*.h5"
# The datasets stored in chunks of one sample (training reads one sample at a time in random order), each with
# the h5py compression options of its chunks: none, by measurement (docs/benchmarks.md, "Shard storage"):
# gzip-1 with shuffle saves 45 % of the disk but costs 9x the read time and doubles the build time.
PER_SAMPLE_CHUNKS = {"image": {}, "posmap": {}}
STRING_DTYPE = h5py.string_dtype("utf-8")


class _CaughtWriteErrors:
    """While a shard is written, the HDF5 write failures that h5py can only print, raised as one OSError.

    When h5py frees an object (a dataset just written) HDF5 may write its
    header; if that fails (a full disk) h5py can only print the error, with a
    traceback through sys.excepthook and again through sys.unraisablehook, and
    the file would be closed and renamed into place without it. Inside the
    block these reports are collected instead; on leaving it the previous
    hooks are back, and the first report becomes an OSError naming `path`
    (errno from HDF5's report). Anything else reaches the previous hooks.
    """

    def __init__(self, path):
        self.path = path
        self.seen = []
        self.previous = None

    def __enter__(self):
        self.previous = sys.unraisablehook, sys.excepthook
        sys.unraisablehook, sys.excepthook = self._unraisable_hook, self._except_hook
        return self

    def __exit__(self, kind, error, traceback):
        sys.unraisablehook, sys.excepthook = self.previous
        if kind is None and self.seen:
            number = re.search(r"errno = (\d+)", self.seen[0])
            code = int(number.group(1)) if number else errno.EIO
            raise OSError(code, os.strerror(code), str(self.path))
        return False

    def _unraisable_hook(self, unraisable):
        if not self._caught(unraisable.exc_value):
            self.previous[0](unraisable)

    def _except_hook(self, kind, error, traceback):
        if not self._caught(error):
            self.previous[1](kind, error, traceback)

    def _caught(self, error) -> bool:
        if isinstance(error, RuntimeError) and "file write failed" in str(error):
            self.seen.append(str(error))
            return True
        return False


def shard_name(index):
    return f"shard-{index:05d}.h5"


def shard_record_path(out_dir, shard_file):
    return Path(out_dir) / f"{shard_file}.json"


def read_record(out_dir, shard_file) -> dict:
    """The record beside a shard (samples, bytes, checksum, inputs, key, rejects); InputError when unreadable."""
    path = shard_record_path(out_dir, shard_file)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable shard record ({first_line(error)})") from None
    if not isinstance(record, dict):
        raise InputError(f"{path}: not a shard record (expected a JSON object)")
    return record


CHECKSUMS = {"xxh3_128": xxhash.xxh3_128, "sha256": hashlib.sha256}
CHECKSUM = "xxh3_128"          # what this version writes; schema version 1 wrote sha256


def file_checksum(path, algorithm=CHECKSUM) -> str:
    """'<algorithm>:<hex digest>' of a file's bytes (algorithm: a key of CHECKSUMS)."""
    digest = CHECKSUMS[algorithm]()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return f"{algorithm}:{digest.hexdigest()}"


def recorded_checksum(entry) -> str | None:
    """The checksum a record or manifest entry gives, as file_checksum writes it; None when it has none.

    Schema version 1 entries hold {"sha256": hex}, later ones {"checksum": "xxh3_128:hex"}.
    """
    if isinstance(entry.get("checksum"), str):
        return entry["checksum"]
    return f"sha256:{entry['sha256']}" if isinstance(entry.get("sha256"), str) else None


def checksum_matches(path, entry) -> bool:
    """Does the file have the checksum the entry records (with the entry's algorithm)?"""
    expected = recorded_checksum(entry)
    algorithm = expected.split(":", 1)[0] if expected else None
    return algorithm in CHECKSUMS and file_checksum(path, algorithm) == expected


def _empty(field, posmap_dtype):
    """A (0, ...) array of a table dataset: C and S at their sizes, K and E zero."""
    shape = tuple(dim if isinstance(dim, int) else 0 for dim in field.dims(UV_SIZE))
    dtype = posmap_dtype if field.name == "posmap" else field.dtypes[0]
    return np.zeros((0,) + shape, dtype)


class ShardWriter:
    """Writes one shard file and then its record (sample count, checksum, size, inputs).

    rows: one dict per sample, {dataset name: value} with the table's datasets
    (optional ones in all rows or none; posmap already of `posmap_dtype`) and
    any of the stage's own, which follow in name order; attributes: exactly
    the table's (shard_attributes).
    """

    def __init__(self, out_dir, shard_file, posmap_dtype="float16"):
        self.out_dir = Path(out_dir)
        self.shard_file = shard_file
        self.posmap_dtype = np.dtype(posmap_dtype)

    def write(self, rows, attributes, record):
        if set(attributes) != {attribute.name for attribute in ATTRIBUTES}:
            raise ValueError(f"shard attributes {sorted(attributes)} differ from the schema's")
        path = self.out_dir / self.shard_file
        # No chunk cache: every chunk goes to disk as it is written, so the file layout
        # does not depend on when objects are freed (Dask's profiler can delay that).
        with atomic_path(path) as tmp, _CaughtWriteErrors(path), h5py.File(
                tmp, "w", libver="earliest", track_order=False, rdcc_nbytes=0) as handle:
            for attribute in ATTRIBUTES:
                handle.attrs[attribute.name] = attributes[attribute.name]
            extra = tuple(sorted(set(rows[0]) - set(BY_NAME))) if rows else ()
            for name in tuple(BY_NAME) + extra:
                if rows and name not in rows[0]:
                    continue
                if not rows and BY_NAME[name].optional:
                    continue
                self._dataset(handle, name, [row[name] for row in rows])
            gc.collect()  # free what the datasets left, so that their failures show while the hooks catch them
        record = {**record, "samples": len(rows), "bytes": path.stat().st_size, "checksum": file_checksum(path)}
        with atomic_path(shard_record_path(self.out_dir, self.shard_file)) as tmp:
            tmp.write_text(json.dumps(record, sort_keys=True) + "\n")

    def _dataset(self, handle, name, values):
        field = BY_NAME.get(name)
        if (field is not None and field.is_string) or (values and isinstance(values[0], str)):
            handle.create_dataset(name, data=np.array(values, dtype=object), dtype=STRING_DTYPE, track_times=False)
            return
        data = np.stack(values) if values else _empty(field, self.posmap_dtype)
        if name == "posmap" and data.dtype != self.posmap_dtype:
            raise ValueError(f"posmap rows are {data.dtype}, the shard's posmap dtype is {self.posmap_dtype}")
        options = {}
        if name in PER_SAMPLE_CHUNKS and len(values):
            options = {"chunks": (1,) + data.shape[1:], **PER_SAMPLE_CHUNKS[name]}
        handle.create_dataset(name, data=data, track_times=False, **options)


def finished_record(out_dir, task, key):
    """The record of a finished shard of `task` (index, samples): its file and a matching record exist, the file's
    size and checksum the record's; else None."""
    shard_path = Path(out_dir) / shard_name(task.index)
    if not shard_path.is_file():
        return None
    try:
        record = read_record(out_dir, shard_name(task.index))
    except InputError:
        return None
    rejects = record.get("rejects")
    if not (isinstance(rejects, list) and all(
            isinstance(reject, dict) and set(reject) == {"sample", "reason"} and reject["sample"] in task.samples
            for reject in rejects)):
        return None
    if (record.get("inputs") == list(task.samples) and record.get("key") == key
            and record.get("bytes") == shard_path.stat().st_size and checksum_matches(shard_path, record)):
        return record
    return None


def write_shard(rows, result, task, key, settings, fingerprint):
    """The shard of a task (index, samples) and its record, rejects in input order (in the ChunkResult too)."""
    result.sort_rejects(task.samples)
    ShardWriter(settings.out_dir, shard_name(task.index), settings.posmap_dtype).write(
        rows, shard_attributes(fingerprint, settings),
        record={"inputs": list(task.samples), "key": key, "rejects": result.rejects})
