"""`prn-prep build`: 300W-LP / AFLW2000-3D samples to HDF5 shards of crops and UV position maps.

Per sample (docs/formats.md section 6): vertices from the coefficients (a batch per
matrix product), placed by the pose, a crop from the 68 landmarks (jittered
per sample from (seed, name) unless disabled), the image warped to the crop,
the vertices moved into the crop (z scaled, min z 0) and the position map
gathered through the model's UV table (the crop in prn.pipeline.sample_geometry,
shared with augment). Each task is one whole shard: a fixed slice of the
sorted sample list, written atomically with a JSON record beside it (its
inputs, settings and rejects, so that a rerun that skips it still reports
them); the manifest is assembled from the records, and shards of an earlier
plan that the manifest does not list are removed.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prn.pipeline.datasets import SUBSETS_300WLP, SampleError, check_name, read_image, read_params
from prn.pipeline.lock import output_lock
from prn.pipeline.provenance import find_dataset_record
from prn.pipeline.sample_geometry import VERTEX_BATCH, PlacedFace, crop_rows, worker_uv_table
from prn.pipeline.shards import (
    finished_record,
    remove_unlisted_shards,
    shard_key,
    shard_name,
    write_manifest,
    write_shard,
)
from prn.pipeline.stage import ChunkResult, run_chunks, worker_morphable_model
from prn.rendering.files.matfile import read_mat
from prn.rendering.geometry.pose import rotation_matrices
from prn.rendering.util.errors import InputError


@dataclass(frozen=True)
class BuildSettings:
    face_model_dir: Path
    out_dir: Path
    layout: str                # "300w-lp" or "aflw2000"
    seed: int = 0
    jitter: bool = True
    shard_size: int = 1024
    posmap_dtype: str = "float16"


@dataclass(frozen=True)
class ShardTask:
    index: int
    src_dir: Path
    samples: tuple              # relative stems, e.g. "AFW/AFW_1051618982_1_0"

    def __len__(self):
        return len(self.samples)


# ---------------------------------------------------------------------------
# Finding the samples


def detect_layout(src_dir):
    """'300w-lp' or 'aflw2000' from the folder's contents; a `prn-prep fit` output is 300W-LP-format data."""
    src_dir = Path(src_dir)
    if (src_dir / "300W_LP").is_dir() and (src_dir / "AFLW2000").is_dir():
        raise InputError(f"{src_dir}: holds both 300W_LP and AFLW2000; give one of them as --src, or --layout")
    if src_dir.name == "300W_LP" or (src_dir / "300W_LP").is_dir() or any(
            (src_dir / subset).is_dir() for subset in SUBSETS_300WLP):
        return "300w-lp"
    record = find_dataset_record(src_dir)
    if record is not None and record.stage == "fit":
        return "300w-lp"
    if src_dir.name == "AFLW2000" or (src_dir / "AFLW2000").is_dir() or any(src_dir.glob("image*.jpg")):
        return "aflw2000"
    raise InputError(f"{src_dir}: neither a 300W-LP nor an AFLW2000-3D folder (use --layout)")


def dataset_root(src_dir, layout):
    """The folder holding the samples: src itself or its 300W_LP / AFLW2000 child."""
    src_dir = Path(src_dir)
    child = src_dir / ("300W_LP" if layout == "300w-lp" else "AFLW2000")
    return child if child.is_dir() else src_dir


SAMPLE_SUFFIXES = (".jpg", ".mat")


def find_samples(root, layout, subsets=None):
    """Sorted relative stems of the samples (an image or a .mat, so that half pairs get reported).

    300W-LP: `<SUBSET>/<name>` in the subset folders (all eight by default);
    a folder with none of them (`prn-prep fit`'s output of other folders, or
    of a flat one) gives every sample under it. AFLW2000-3D: `<name>` in the
    folder itself.
    """
    root = Path(root)
    if layout == "300w-lp":
        chosen = subsets or SUBSETS_300WLP
        unknown = sorted(set(chosen) - set(SUBSETS_300WLP))
        if unknown:
            raise InputError(f"unknown 300W-LP subsets {', '.join(unknown)}; expected some of "
                             f"{', '.join(SUBSETS_300WLP)}")
        folders = [root / subset for subset in chosen if (root / subset).is_dir()]
        if not subsets and not folders:
            return _samples_under(root)
    else:
        folders = [root]
    stems = set()
    for folder in folders:
        for path in folder.iterdir():
            if path.suffix.lower() in SAMPLE_SUFFIXES and path.is_file():
                stems.add(path.relative_to(root).with_suffix("").as_posix())
    return sorted(stems)


def _samples_under(root):
    """Sorted stems of every .jpg or .mat under root, hidden folders (a shards folder's temporaries) left out."""
    stems = set()
    for path in root.rglob("*"):
        inside = path.relative_to(root)
        if path.suffix.lower() in SAMPLE_SUFFIXES and path.is_file() \
                and not any(part.startswith(".") for part in inside.parts):
            stems.add(inside.with_suffix("").as_posix())
    return sorted(stems)


# ---------------------------------------------------------------------------
# One sample


@dataclass
class Loaded:
    """A sample read and checked, before its geometry."""

    name: str
    subset: str
    image: np.ndarray
    params: object
    pt3d_68: np.ndarray | None


def load_sample(root, name, layout, face_model):
    """Read one sample's image and parameters; SampleError for anything unusable."""
    check_name(root, name)
    image = read_image(root / f"{name}.jpg")
    mat_path = root / f"{name}.mat"
    fields = read_mat(mat_path, "sample parameters")
    params = read_params(mat_path, fields)
    if len(params.shape) > face_model.n_shape or len(params.exp) > face_model.n_exp:
        raise SampleError(f"{mat_path}: {len(params.shape)} shape / {len(params.exp)} expression coefficients "
                          f"exceed the model's {face_model.n_shape} / {face_model.n_exp}")
    pt3d = None
    if layout == "aflw2000":
        if "pt3d_68" not in fields:
            raise SampleError(f"{mat_path}: missing field 'pt3d_68'")
        pt3d = np.asarray(fields["pt3d_68"], np.float64)
        if pt3d.shape != (3, 68) or not np.isfinite(pt3d).all():
            raise SampleError(f"{mat_path}: field 'pt3d_68' must be 3 x 68 and finite, got {pt3d.shape}")
        pt3d = pt3d.T.astype(np.float32)
        height, width = image.shape[:2]
        outside = face_outside(pt3d[:, :2], width, height)
        if outside is not None:
            raise SampleError(f"{mat_path}: field 'pt3d_68': {outside}")
    subset = name.split("/")[0] if layout == "300w-lp" else "AFLW2000"
    return Loaded(name=name, subset=subset, image=image, params=params, pt3d_68=pt3d)


# The least fraction of a face's 68-landmark box that must lie in its image. The 12,000 faces of the shipped
# network's first training set (`--world photo`, seed 0) have 0.34 or more; a label far larger than its image
# (an absurd scale or shape, a 16 px image with 450 px labels) has next to nothing.
MIN_INSIDE = 0.25


def face_outside(landmarks, width, height) -> str | None:
    """Why a face with 2D landmarks (68, 2), image pixels, is not substantially inside a width x height image;
    None when it is."""
    if not np.isfinite(landmarks).all():
        return "the face's landmarks are not finite numbers (parameters far out of range?)"
    low, high = landmarks.min(0), landmarks.max(0)
    if high[0] < 0 or high[1] < 0 or low[0] > width - 1 or low[1] > height - 1:
        return f"the face lies wholly outside the {width} x {height} image"
    shared = np.clip(np.minimum(high, [width, height]) - np.maximum(low, 0), 0, None)
    inside = float(np.prod(shared) / max(np.prod(high - low), 1e-12))
    if inside < MIN_INSIDE:
        return (f"only {100 * inside:.1f} % of the face's landmark box lies in the {width} x {height} image "
                f"(at least {100 * MIN_INSIDE:.0f} % needed)")
    return None


def sample_arrays(face_model, table, sample: Loaded, vertices, rotation, settings: BuildSettings):
    """The shard row of one sample; SampleError when the face is not substantially inside the image (face_outside).

    vertices (n, 3) float32 model units of this sample; rotation (3, 3) of its pose's angles.
    """
    height, width = sample.image.shape[:2]
    face = PlacedFace(vertices, rotation, sample.params.pose, height, np.eye(3))
    with np.errstate(over="ignore", invalid="ignore"):   # absurd parameters overflow: refused just below
        landmarks = face.landmarks(face_model, face.mapping())[:, :2]
    outside = face_outside(landmarks, width, height)
    if outside is not None:
        raise SampleError(f"{sample.name}: {outside}")
    row = crop_rows(face_model, table, face, sample.image, landmarks, sample.name, settings)
    row.update({
        "shape_params": _padded(sample.params.shape, face_model.n_shape),
        "exp_params": _padded(sample.params.exp, face_model.n_exp),
        "image_size": np.array([height, width], np.int32),
        "name": sample.name,
        "subset": sample.subset,
    })
    if sample.pt3d_68 is not None:
        row["pt3d_68"] = sample.pt3d_68
    return row


def _padded(values, length):
    out = np.zeros(length, np.float32)
    out[:len(values)] = values
    return out


# ---------------------------------------------------------------------------
# One shard


def build_shard(task: ShardTask, settings: BuildSettings) -> ChunkResult:
    """Build one shard (or skip it when finished); rejects listed, never written."""
    result = ChunkResult()
    face_model, table = worker_morphable_model(settings.face_model_dir), worker_uv_table(settings.face_model_dir)
    key = shard_key(settings, face_model.fingerprint)
    record = finished_record(settings.out_dir, task, key)
    if record is not None:
        result.resume(task.samples, record["rejects"])
        return result
    root = Path(task.src_dir)
    rows = []
    for start in range(0, len(task.samples), VERTEX_BATCH):
        loaded = []
        for name in task.samples[start:start + VERTEX_BATCH]:
            try:
                loaded.append(load_sample(root, name, settings.layout, face_model))
            except InputError as error:
                result.reject(name, error)
        if not loaded:
            continue
        vertices = face_model.vertices(np.stack([_padded(s.params.shape, face_model.n_shape) for s in loaded]),
                                  np.stack([_padded(s.params.exp, face_model.n_exp) for s in loaded]))
        rotations = rotation_matrices(np.stack([s.params.pose[:3] for s in loaded]))
        for sample, sample_vertices, rotation in zip(loaded, vertices, rotations):
            try:
                rows.append(sample_arrays(face_model, table, sample, sample_vertices, rotation, settings))
            except InputError as error:
                result.reject(sample.name, error)
                continue
            result.written.append(sample.name)
    write_shard(rows, result, task, key, settings, face_model.fingerprint)
    return result


# ---------------------------------------------------------------------------
# The whole build


def plan_shards(src_dir, layout, shard_size, subsets=None):
    """(dataset root, [ShardTask]): fixed slices of the sorted sample list."""
    root = dataset_root(src_dir, layout)
    names = find_samples(root, layout, subsets)
    if not names:
        raise InputError(f"{src_dir}: no samples (.jpg + .mat) found for layout {layout}")
    tasks = [ShardTask(index=i, src_dir=root, samples=tuple(names[start:start + shard_size]))
             for i, start in enumerate(range(0, len(names), shard_size))]
    return root, tasks


def check_out_apart(out_dir, src_dir, root):
    """InputError when the output folder is the source, its dataset folder, or the folder of its dataset record:
    the shards and rejects.jsonl would land among the data and replace `synth`'s or `fit`'s rejects."""
    record = find_dataset_record(root)
    taken = {Path(src_dir).resolve(), Path(root).resolve()} | ({record.path.parent.resolve()} if record else set())
    if Path(out_dir).resolve() in taken:
        raise InputError(f"{out_dir}: the output folder must not be the source folder or its dataset's folder")


def build(settings: BuildSettings, src_dir, subsets=None, workers=1, scheduler=None, progress=True):
    """Build all shards (resuming finished ones) and write manifest.json; returns the StageSummary.

    The summary, rejects.jsonl and the manifest cover the whole run, the
    rejects of skipped shards included. The output folder is locked for the run.
    """
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise InputError(f"{src_dir}: source folder not found")
    face_model = worker_morphable_model(settings.face_model_dir)
    root, tasks = plan_shards(src_dir, settings.layout, settings.shard_size, subsets)
    check_out_apart(settings.out_dir, src_dir, root)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    with output_lock(settings.out_dir):
        summary = run_chunks(build_shard, tasks, settings, settings.out_dir, workers=workers,
                             scheduler=scheduler, description="build", progress=progress)
        write_manifest(settings, root, tasks, face_model.fingerprint, summary.rejects)
        remove_unlisted_shards(settings.out_dir, [shard_name(task.index) for task in tasks])
    return summary
