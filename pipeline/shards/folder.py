"""Reading a shard folder through its manifest: counts, sample names, fields by shard and row."""

import os
import re
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np

from prn.pipeline.shards.manifest import MANIFEST, load_manifest
from prn.pipeline.shards.schema import BY_NAME, FREE_SYMBOLS, READABLE_VERSIONS, UV_SIZE
from prn.rendering.util.errors import InputError, first_line

MAX_OPEN_FILES = 64          # per process, least recently used closed first
_DAMAGED = (OSError, RuntimeError, ValueError)     # what h5py raises reading damaged data


def open_shard(path):
    """A shard file, read-only, without a chunk cache (reads go by sample or by block: each chunk once)."""
    return h5py.File(path, "r", rdcc_nbytes=0)


def stored_outside(handle, name) -> str | None:
    """Why the dataset `name` of an open shard is not plain storage inside the shard file, or None when it is.

    A shard must hold its own bytes: HDF5 also lets a dataset be a link to another file or place, a virtual
    view of other files, or raw bytes in an external file, and every reader would then read whatever local
    file the shard names (docs/reliability.md).
    """
    link = handle.get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        return f"an external link to {link.filename}"
    if isinstance(link, h5py.SoftLink):
        return f"a soft link to {link.path}"
    dataset = handle.get(name)
    if not isinstance(dataset, h5py.Dataset):
        return None
    if dataset.is_virtual:
        return "a virtual dataset (its data lie in other files)"
    if dataset.external:
        return f"stored in the external file {dataset.external[0][0]!r}"
    return None


class OpenFiles:
    """Shard files opened on first use and kept open, per process; past `limit` the least recently used closes.

    A forked or unpickled copy drops the handles it inherited, unclosed, and opens its own.
    """

    def __init__(self, limit=MAX_OPEN_FILES):
        self.limit = limit
        self._entries = OrderedDict()        # path -> (h5py.File, {dataset name: dataset or its str view})
        self._pid = os.getpid()

    def __len__(self):
        return len(self._entries) if self._pid == os.getpid() else 0

    def __getstate__(self):
        return {"limit": self.limit, "_entries": OrderedDict(), "_pid": None}

    def entry(self, path):
        """(h5py.File, its datasets looked up so far) of `path`, opened now when it is not open."""
        if self._pid != os.getpid():
            self._entries = OrderedDict()
            self._pid = os.getpid()
        entry = self._entries.get(path)
        if entry is not None:
            self._entries.move_to_end(path)
            return entry
        entry = self._entries[path] = (open_shard(path), {})
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)[1][0].close()
        return entry

    def close(self):
        if self._pid == os.getpid():
            for handle, _ in self._entries.values():
                handle.close()
        self._entries = OrderedDict()


class ShardFolder:
    """A shard folder read through its manifest.

    files, paths, counts (F,) int64 and starts (F + 1,) int64 (index of each
    shard's first sample) follow the manifest's shard order; a sample index
    runs over all shards in that order. Only the manifest is read here; HDF5
    files open on first read and stay open until close() (open_files: an
    OpenFiles, shared between folders when given). A pickled or forked copy
    opens its own. A missing or damaged shard, a missing dataset or one whose
    length is not the manifest's count: InputError, one line naming the shard.
    """

    def __init__(self, folder, open_files=None):
        self.folder = Path(folder)
        self.manifest = load_manifest(self.folder)
        check_readable(self.manifest, self.folder / MANIFEST)
        entries = self.manifest["shards"]
        self.files = tuple(entry["file"] for entry in entries)
        self.paths = tuple(self.folder / file for file in self.files)
        self.counts = np.array([entry["samples"] for entry in entries], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self.open_files = OpenFiles() if open_files is None else open_files
        self._names = None

    def __len__(self):
        return int(self.starts[-1])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __getstate__(self):
        return {**self.__dict__, "_names": None}

    def close(self):
        """Close the open files (all of the shared OpenFiles)."""
        self.open_files.close()

    @property
    def uv_size(self):
        return int(self.manifest.get("uv_size", UV_SIZE))

    @property
    def names(self):
        """(N,) str sample names of all shards in order, read once."""
        if self._names is None:
            parts = [self.read(shard, ("name",))["name"] for shard in self.nonempty()]
            self._names = np.concatenate(parts) if parts else np.array([], dtype=str)
        return self._names

    def nonempty(self):
        """Indices of the shards the manifest gives samples."""
        return [shard for shard, count in enumerate(self.counts) if count > 0]

    def locate(self, index):
        """(shard, row) ints of sample `index`, 0 <= index < len(self)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        shard = int(np.searchsorted(self.starts, index, side="right")) - 1
        return shard, int(index - self.starts[shard])

    def fields(self, shard):
        """The names of the datasets in shard `shard` (an index into files)."""
        handle, _ = self._entry(shard)
        try:
            return frozenset(handle)
        except _DAMAGED as error:
            raise InputError(f"{self.paths[shard]}: cannot read shard ({first_line(error)})") from None

    def require(self, names):
        """InputError unless every shard with samples holds the datasets `names`."""
        for shard in self.nonempty():
            present = self.fields(shard)
            missing = [name for name in names if name not in present]
            if missing:
                raise InputError(f"{self.paths[shard]}: missing dataset {missing[0]} (not a `prn-prep build` shard?)")

    def read(self, shard, names, rows=slice(None)):
        """{name: values} of shard `shard`: rows a slice ((n, ...) arrays) or an int (one row, no N axis).

        String datasets come decoded: str arrays, or a str for one row. A NaN
        or infinite number in a float dataset is an InputError naming the row.
        """
        out = {}
        for name in names:
            dataset = self._dataset(shard, name)
            try:
                values = dataset[rows]
            except _DAMAGED as error:
                raise InputError(f"{self.paths[shard]}: cannot read shard ({first_line(error)})") from None
            if isinstance(values, np.ndarray) and values.dtype == object:
                values = values.astype(str)
            elif isinstance(values, np.ndarray) and values.dtype.kind == "f" and not np.isfinite(values).all():
                bad = rows if not isinstance(rows, slice) else range(*rows.indices(int(self.counts[shard])))[
                    int(np.argmin(np.isfinite(values).reshape(len(values), -1).all(axis=1)))]
                raise InputError(f"{self.paths[shard]}: dataset '{name}' holds NaN or infinite values (row {bad})")
            out[name] = values
        return out

    def blocks(self, names, size):
        """Yield (sample indices (B,) int64, {name: (B, ...) array}) over all samples; a block stays in a shard."""
        for shard in self.nonempty():
            start, count = int(self.starts[shard]), int(self.counts[shard])
            for first in range(0, count, size):
                last = min(first + size, count)
                yield np.arange(start + first, start + last), self.read(shard, names, slice(first, last))

    def _entry(self, shard):
        path = self.paths[shard]
        try:
            return self.open_files.entry(path)
        except Exception as error:  # h5py raises OSError, ValueError ... for files it cannot open
            if not path.is_file():
                raise InputError(f"{path}: missing (listed in {MANIFEST}; run `prn-prep verify`)") from None
            raise InputError(f"{path}: cannot read shard ({first_line(error)})") from None

    def _dataset(self, shard, name):
        """The dataset `name` of a shard (its str view for strings), checked against the manifest's count once."""
        handle, datasets = self._entry(shard)
        if name not in datasets:
            path = self.paths[shard]
            try:
                dataset = handle.get(name)
            except _DAMAGED as error:
                raise InputError(f"{path}: cannot read shard ({first_line(error)})") from None
            if dataset is None:
                raise InputError(f"{path}: missing dataset {name} (not a `prn-prep build` shard?)")
            outside = stored_outside(handle, name)
            if outside is not None:
                raise InputError(f"{path}: dataset '{name}' is {outside}; a shard keeps its data inside its "
                                 "own file: refused")
            if dataset.shape[:1] != (self.counts[shard],):
                raise InputError(f"{path}: dataset '{name}' has shape {dataset.shape}, the manifest says "
                                 f"{self.counts[shard]} samples")
            problem = schema_problem(name, dataset, self.uv_size)
            if problem:
                raise InputError(f"{path}: dataset '{name}' {problem} (not a `prn-prep build` shard?)")
            datasets[name] = dataset.asstr() if h5py.check_string_dtype(dataset.dtype) else dataset
        return datasets[name]


FINGERPRINT = re.compile(r"[0-9a-f]{64}")


class ShardFolders:
    """Several shard folders read as one sequence of samples: folder by folder, each in its manifest's order.

    folders: the ShardFolder of each (opened with one shared OpenFiles);
    offsets (K + 1,) int64: the index of each folder's first sample. The one
    sample index of training and evaluation: ShardFolder.locate within a
    folder, `locate` across them.
    """

    def __init__(self, paths, open_files=None):
        self.open_files = OpenFiles() if open_files is None else open_files
        self.folders = tuple(ShardFolder(path, self.open_files) for path in paths)
        self.offsets = np.concatenate([[0], np.cumsum([len(folder) for folder in self.folders])]).astype(np.int64)

    def __len__(self):
        return int(self.offsets[-1])

    def locate(self, index):
        """(ShardFolder, shard, row) of sample `index`, 0 <= index < len(self)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        number = int(np.searchsorted(self.offsets, index, side="right")) - 1
        folder = self.folders[number]
        return (folder, *folder.locate(int(index - self.offsets[number])))

    def close(self):
        self.open_files.close()


def check_readable(manifest, path):
    """InputError unless the manifest's schema version is one this reader knows, its model fingerprint (when
    given) is a fingerprint and its uv_size a map size: what every reader relies on, as `verify` checks it."""
    version = manifest.get("schema_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        known = ", ".join(map(str, READABLE_VERSIONS))
        raise InputError(f"{path}: schema_version {version!r}, this reader knows {known} (made by a newer "
                         "prn-toolkit?)")
    fingerprint = manifest.get("model_fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, str) and FINGERPRINT.fullmatch(fingerprint)):
        raise InputError(f"{path}: model_fingerprint {str(fingerprint)[:70]!r} is not a fingerprint (64 hex digits)")
    size = manifest.get("uv_size", UV_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 1024:
        raise InputError(f"{path}: uv_size {size!r} is not a position map size (32 to 1024)")


def schema_problem(name, dataset, uv_size) -> str | None:
    """What makes a shard dataset not the schema's (docs/formats.md, "Shards"), or None; names not in it pass."""
    field = BY_NAME.get(name)
    if field is None:
        return None
    if field.is_string:
        return None if h5py.check_string_dtype(dataset.dtype) else f"is {dataset.dtype}, expected strings"
    if dataset.dtype.name not in field.dtypes:
        return f"is {dataset.dtype}, expected {' or '.join(field.dtypes)}"
    dims = field.dims(uv_size)
    if len(dataset.shape) != 1 + len(dims) or any(
            dim not in FREE_SYMBOLS and size != dim for size, dim in zip(dataset.shape[1:], dims)):
        return f"has shape {dataset.shape}, expected (N, {', '.join(map(str, dims))})"
    return None
