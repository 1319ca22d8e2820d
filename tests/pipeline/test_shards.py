"""The shard format's owner: schema table, writer, manifest and the one reader, ShardFolder."""

import errno
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from prn.model.data import ShardDataset
from prn.model.evaluation.baseline import write_mean_face_predictions
from prn.model.evaluation.evaluate import EvalShards
from prn.pipeline.augment import AugmentSettings, plan
from prn.pipeline.inspect import draw_grid, summarize_shards
from prn.pipeline.shards import (
    ATTRIBUTES,
    CROP_SIZE,
    DATASETS,
    MANIFEST,
    SCHEMA_VERSION,
    UV_SIZE,
    OpenFiles,
    ShardFolder,
    ShardFolders,
    ShardWriter,
    load_manifest,
    read_record,
    schema_markdown,
    shard_attributes,
    shard_name,
    write_manifest,
)
from prn.pipeline.verify import verify_shards
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.rendering.util.errors import InputError
from prn.uv_data import builtin_uv_dir

DOCS = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
SIZES = (3, 0, 2)                     # samples per shard: the middle one empty


@dataclass(frozen=True)
class Settings:
    face_model_dir: Path
    out_dir: Path
    layout: str = "300w-lp"
    seed: int = 0
    jitter: bool = False
    posmap_dtype: str = "float16"


@dataclass(frozen=True)
class Task:
    index: int
    samples: tuple


def sample_row(rng, name):
    """One shard row of random content; names in and beyond ASCII."""
    kpt68 = rng.uniform(40, 200, (68, 3)).astype(np.float32)
    return {
        "image": rng.integers(0, 256, (CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8),
        "posmap": rng.uniform(0, 255, (UV_SIZE, UV_SIZE, 3)).astype(np.float16),
        "kpt68": kpt68,
        "tform": np.eye(3, dtype=np.float32),
        "pose": rng.uniform(-0.5, 0.5, 7).astype(np.float32),
        "shape_params": rng.normal(size=5).astype(np.float32),
        "exp_params": rng.normal(size=3).astype(np.float32),
        "image_size": np.array([300, 400], np.int32),
        "name": name,
        "subset": name.split("/")[0],
    }


def write_folder(out_dir, sizes=SIZES, seed=0):
    """Shards of random rows written as the stages write them, and the manifest; returns (rows, names)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    settings = Settings(face_model_dir=out_dir / "no-model", out_dir=out_dir)
    fingerprint = load_uv_assets(builtin_uv_dir()).face_model_fingerprint  # inspect's grid takes the shipped UV assets
    tasks, rows = [], []
    for index, size in enumerate(sizes):
        names = tuple(f"{'AFW' if i % 2 else 'HELEN'}/Ångström_日本_{index}_{i}" for i in range(size))
        shard_rows = [sample_row(rng, name) for name in names]
        ShardWriter(out_dir, shard_name(index)).write(shard_rows, shard_attributes(fingerprint, settings),
                                                      record={"inputs": list(names), "key": {}, "rejects": []})
        tasks.append(Task(index=index, samples=names))
        rows += shard_rows
    write_manifest(settings, out_dir / "src", tasks, fingerprint, [])
    return rows, [row["name"] for row in rows]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards") / "out"
    rows, names = write_folder(folder)
    return folder, rows, names


def test_writer_round_trip_through_the_folder(written):
    folder, rows, names = written
    shards = ShardFolder(folder)
    assert shards.files == tuple(shard_name(i) for i in range(3)) and list(shards.counts) == list(SIZES)
    assert len(shards) == 5 and shards.uv_size == UV_SIZE and shards.nonempty() == [0, 2]
    assert shards.names.tolist() == names
    assert shards.locate(3) == (2, 0)
    with pytest.raises(IndexError):
        shards.locate(5)
    for index, row in enumerate(rows):
        shard, local = shards.locate(index)
        sample = shards.read(shard, [field.name for field in DATASETS if not field.optional], local)
        for key, value in row.items():
            np.testing.assert_array_equal(sample[key], value)
        assert isinstance(sample["name"], str)
    indices, blocks = zip(*shards.blocks(("kpt68", "subset"), 2))
    assert [list(i) for i in indices] == [[0, 1], [2], [3, 4]]
    np.testing.assert_array_equal(np.concatenate([b["kpt68"] for b in blocks]), [row["kpt68"] for row in rows])
    assert np.concatenate([b["subset"] for b in blocks]).tolist() == [row["subset"] for row in rows]
    copy = pickle.loads(pickle.dumps(shards))
    assert not copy.open_files and copy.names.tolist() == names
    shards.close()


def test_several_folders_are_one_sequence_of_samples(written):
    """ShardFolders: folder by folder, each in manifest order (its empty shard skipped), files opened once."""
    folder, rows, _ = written
    both = ShardFolders([folder, folder])
    assert len(both) == 2 * len(rows) and list(both.offsets) == [0, 5, 10]
    places = [both.locate(index) for index in range(len(both))]
    assert [(shard, row) for _, shard, row in places] == [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1)] * 2
    assert [place[0] for place in places] == [both.folders[0]] * 5 + [both.folders[1]] * 5
    with pytest.raises(IndexError):
        both.locate(10)
    kpt = [found.read(shard, ("kpt68",), row)["kpt68"] for found, shard, row in places]
    np.testing.assert_array_equal(kpt, [row["kpt68"] for row in rows] * 2)
    assert len(both.open_files) == 2
    both.close()
    assert verify_shards(folder) == []


def test_empty_shard_and_files_follow_the_table(written):
    folder = written[0]
    with h5py.File(folder / shard_name(1), "r") as handle:
        assert list(handle) == sorted(field.name for field in DATASETS if not field.optional)
        assert handle["image"].shape == (0, CROP_SIZE, CROP_SIZE, 3) and handle["shape_params"].shape == (0, 0)
        assert handle["posmap"].dtype == np.float16
        assert sorted(handle.attrs) == sorted(attribute.name for attribute in ATTRIBUTES)
        assert handle.attrs["schema_version"] == SCHEMA_VERSION
    record = read_record(folder, shard_name(0))
    manifest = load_manifest(folder)
    assert record["samples"] == 3 and manifest["shards"][0]["checksum"] == record["checksum"]
    assert manifest["samples"] == 5 and manifest["uv_size"] == UV_SIZE


def test_a_write_failure_h5py_only_prints_fails_the_write_and_the_hooks_are_caught_only_while_writing(
        tmp_path, monkeypatch):
    passed_on = []
    monkeypatch.setattr(sys, "unraisablehook", passed_on.append)
    hooks = sys.unraisablehook, sys.excepthook
    write_dataset = ShardWriter._dataset

    def reporting(self, handle, name, values):
        write_dataset(self, handle, name, values)
        if name == "posmap":
            sys.unraisablehook(SimpleNamespace(exc_value=RuntimeError("other")))
            sys.unraisablehook(SimpleNamespace(exc_value=RuntimeError("file write failed: errno = 28, error")))

    monkeypatch.setattr(ShardWriter, "_dataset", reporting)
    settings = Settings(face_model_dir=tmp_path / "no-model", out_dir=tmp_path)
    with pytest.raises(OSError) as error:
        ShardWriter(tmp_path, shard_name(0)).write([sample_row(np.random.default_rng(0), "AFW/a")],
                                                   shard_attributes("f" * 64, settings), record={})
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(tmp_path / shard_name(0))
    assert [str(report.exc_value) for report in passed_on] == ["other"]
    assert (sys.unraisablehook, sys.excepthook) == hooks and list(tmp_path.iterdir()) == []


def test_every_reader_decodes_names_the_same(written, tmp_path):
    folder, _, names = written
    assert EvalShards(folder).name.tolist() == names
    _, tasks = plan(AugmentSettings(face_model_dir=folder, out_dir=tmp_path / "aug", layout="300w-lp",
                                    rotations=((0.0, 0.0, 0.0),)), folder)
    assert [item[2] for task in tasks for item in task.items] == names
    path = write_mean_face_predictions([folder], folder, builtin_uv_dir(), tmp_path / "mean.npz")
    with np.load(path) as archive:
        assert archive["name"].tolist() == names
    assert draw_grid(folder, tmp_path / "grid.png", count=len(names))["samples"] == names
    assert summarize_shards(folder)["subsets"] == {"AFW": 2, "HELEN": 3}


def damage(folder, how):
    path = folder / shard_name(2)
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:4096])
    elif how == "garbage":
        data = bytearray(path.read_bytes())
        data[:512] = b"\x17" * 512
        path.write_bytes(bytes(data))
    elif how == "no_dataset":
        with h5py.File(path, "a") as handle:
            for name in ("image", "posmap", "tform", "name", "subset", "pose"):
                del handle[name]
    return path


READERS = {
    "names": lambda folder: ShardFolder(folder).names,
    "blocks": lambda folder: list(ShardFolder(folder).blocks(("posmap",), 4)),
    "dataset": lambda folder: ShardDataset(folder, augment=False)[4],
    "evaluate": EvalShards,
    "summary": summarize_shards,
    "augment": lambda folder: plan(AugmentSettings(face_model_dir=folder, out_dir=folder / "aug", layout="300w-lp",
                                                   rotations=((0.0, 0.0, 0.0),)), folder),
}


@pytest.mark.parametrize("how, message", [("missing", "missing"), ("truncated", "cannot read shard"),
                                          ("garbage", "cannot read shard"), ("no_dataset", "missing dataset")])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_damaged_shards_are_one_line_errors_naming_the_file(tmp_path, how, message, reader):
    write_folder(tmp_path / "out")
    path = damage(tmp_path / "out", how)
    with pytest.raises(InputError) as error:
        READERS[reader](tmp_path / "out")
    text = str(error.value)
    assert "\n" not in text and str(path) in text and message in text, text


def test_counts_must_match_the_manifest(tmp_path):
    folder = tmp_path / "out"
    write_folder(folder)
    manifest = (folder / MANIFEST).read_text()
    (folder / MANIFEST).write_text(manifest.replace('"samples": 2', '"samples": 3'))
    with pytest.raises(InputError, match=re.escape(f"{folder / shard_name(2)}: dataset 'name' has shape (2,)")):
        ShardFolder(folder).names.tolist()


def test_open_files_are_limited_and_per_process(written):
    folder = written[0]
    open_files = OpenFiles(limit=1)
    shards = ShardFolder(folder, open_files)
    shards.read(0, ("pose",))
    shards.read(2, ("pose",))
    assert len(open_files) == 1
    assert not pickle.loads(pickle.dumps(open_files))
    shards.close()
    assert not open_files


def test_docs_table_is_the_schema():
    text = DOCS.read_text()
    begin = re.search(r"<!-- shard schema: begin[^\n]*-->\n", text)
    end = text.index("<!-- shard schema: end -->")
    assert begin and text[begin.end():end] == schema_markdown()


def move_outside(path, how, elsewhere):
    """Every dataset of the shard at `path` made to hold no bytes of its own, `how`: "external" (numbers as raw
    bytes in a file `elsewhere`, strings as external links), "link" (external links to a copy `elsewhere`),
    "virtual" (numbers as virtual views of that copy, strings as external links) or "soft" (soft links to the
    data moved into a group of the same file)."""
    copy = elsewhere / "outside.h5"
    copy.write_bytes(path.read_bytes())
    with h5py.File(path, "a") as handle:
        for name in [key for key in handle if isinstance(handle[key], h5py.Dataset)]:
            dataset = handle[name]
            strings = h5py.check_string_dtype(dataset.dtype) is not None
            if how == "soft":
                handle.move(name, f"moved/{name}")
                handle[name] = h5py.SoftLink(f"/moved/{name}")
            elif how == "link" or strings:
                del handle[name]
                handle[name] = h5py.ExternalLink(str(copy), name)
            elif how == "external":
                raw = elsewhere / f"{name}.bin"
                values = dataset[()]
                raw.write_bytes(values.tobytes())
                shape, dtype = values.shape, values.dtype
                del handle[name]
                handle.create_dataset(name, shape=shape, dtype=dtype, external=[(str(raw), 0, values.nbytes)])
            else:
                layout = h5py.VirtualLayout(shape=dataset.shape, dtype=dataset.dtype)
                layout[...] = h5py.VirtualSource(str(copy), name, shape=dataset.shape)
                del handle[name]
                handle.create_virtual_dataset(name, layout)


@pytest.mark.parametrize("how, described", [("external", ("external file", "external link")),
                                            ("link", ("external link",)), ("virtual", ("virtual dataset",
                                                                                       "external link")),
                                            ("soft", ("soft link",))])
def test_data_stored_outside_a_shard_is_refused_by_every_reader(tmp_path, how, described):
    """A shard whose datasets point elsewhere (any local file) is refused: by every reader, and by verify."""
    write_folder(tmp_path / "out")
    (tmp_path / "elsewhere").mkdir()
    path = tmp_path / "out" / shard_name(2)
    move_outside(path, how, tmp_path / "elsewhere")
    for reader in sorted(READERS):
        with pytest.raises(InputError) as error:
            READERS[reader](tmp_path / "out")
        text = str(error.value)
        assert "\n" not in text and str(path) in text and "refused" in text, (reader, text)
        assert any(words in text for words in described), (reader, text)
    problems = [line for line in verify_shards(tmp_path / "out") if described[0] in line]
    assert problems and all(str(path) in line for line in problems), verify_shards(tmp_path / "out")


@pytest.mark.parametrize("change, words", [
    (lambda manifest: manifest["shards"][0].update(samples=-3), "malformed (expected a 'shards' list"),
    (lambda manifest: manifest["shards"][0].update(samples=10 ** 30), "malformed (expected a 'shards' list"),
    (lambda manifest: manifest.update(samples=-3), "'samples' must be a count"),
    (lambda manifest: manifest.update(settings=[1, 2]), "'settings' a mapping"),
])
def test_a_manifest_with_impossible_counts_or_settings_is_one_line(tmp_path, change, words):
    import json

    folder = tmp_path / "out"
    write_folder(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=re.escape(f"{folder / MANIFEST}: malformed")) as error:
        ShardFolder(folder)
    assert words in str(error.value)
    problems = verify_shards(folder)
    assert problems and words in problems[0], problems
    (folder / MANIFEST).write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(InputError, match="nested too deep"):
        ShardFolder(folder)


def rewrite_dataset(path, name, values):
    with h5py.File(path, "a") as handle:
        del handle[name]
        handle.create_dataset(name, data=values)


def misread(folder, how):
    """The shard folder made to lie to its readers in one way `how`; returns the file the error must name."""
    import json

    path = folder / shard_name(2)
    if how in ("schema_version", "fingerprint"):
        manifest = json.loads((folder / MANIFEST).read_text())
        manifest.update({"schema_version": 99} if how == "schema_version" else {"model_fingerprint": "x" * 12})
        (folder / MANIFEST).write_text(json.dumps(manifest))
        return folder / MANIFEST
    with h5py.File(path, "r") as handle:
        posmap, image = handle["posmap"][()], handle["image"][()]
    if how == "posmap_int8":
        rewrite_dataset(path, "posmap", posmap.astype(np.int8))
    elif how == "image_4_channels":
        rewrite_dataset(path, "image", np.concatenate([image, image[..., :1]], axis=-1))
    elif how == "posmap_128":
        rewrite_dataset(path, "posmap", posmap[:, ::2, ::2])
    elif how == "nan_posmap":
        posmap[1, 100, 100, 2] = np.nan
        rewrite_dataset(path, "posmap", posmap)
    return path


@pytest.mark.parametrize("how, words", [
    ("schema_version", "schema_version 99, this reader knows 1, 2"),
    ("fingerprint", "is not a fingerprint (64 hex digits)"),
    ("posmap_int8", "dataset 'posmap' is int8, expected float16 or float32"),
    ("image_4_channels", "dataset 'image' has shape (2, 256, 256, 4), expected (N, 256, 256, 3)"),
    ("posmap_128", "dataset 'posmap' has shape (2, 128, 128, 3), expected (N, 256, 256, 3)"),
    ("nan_posmap", "dataset 'posmap' holds NaN or infinite values (row 1)"),
])
def test_every_reader_checks_the_schema_it_relies_on(tmp_path, how, words):
    """Each reader that reads the lying part refuses it with verify's kind of line, naming the file."""
    write_folder(tmp_path / "out")
    named = misread(tmp_path / "out", how)
    field = "image" if how.startswith("image") else "posmap"
    readers = dict(READERS) if how in ("schema_version", "fingerprint") else {
        "blocks": lambda folder: list(ShardFolder(folder).blocks((field,), 4)),
        "dataset": READERS["dataset"],
        "evaluate": lambda folder: list(EvalShards(folder).batches(4, (field,))),
    }
    for reader, read in sorted(readers.items()):
        with pytest.raises(InputError) as error:
            read(tmp_path / "out")
        text = str(error.value)
        assert "\n" not in text and str(named) in text and words in text, (reader, text)
