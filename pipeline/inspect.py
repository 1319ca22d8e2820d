"""Checking and looking at a shard folder written by `prn-prep build`.

`verify_shards` checks a folder against its manifest (files, sizes, sha256,
the HDF5 schema of pipeline/shards.py, one model, unique names, no leftovers)
and returns one line per problem, each naming the file; `summarize_shards`
counts samples per shard and subset and histograms the poses;
`draw_grid` writes a PNG contact sheet of crops with their landmarks next to
the visualised position maps.
"""

import json
import math
from pathlib import Path

import cv2
import h5py
import numpy as np

from prn.pipeline.build import CROP_SIZE, MANIFEST
from prn.pipeline.shards import OPTIONAL, SCHEMA_VERSION, file_sha256
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import keypoint_pixels, load_uv_assets
from prn.rendering.util.atomic import write_png
from prn.rendering.util.errors import InputError

# name -> (shape after N, where None is any length (the same in every shard), allowed dtypes)
_NUMERIC = {
    "image": ((CROP_SIZE, CROP_SIZE, 3), ("uint8",)),
    "posmap": (("uv", "uv", 3), ("float16", "float32")),
    "kpt68": ((68, 3), ("float32",)),
    "tform": ((3, 3), ("float32",)),
    "pose": ((7,), ("float32",)),
    "shape_params": ((None,), ("float32",)),
    "exp_params": ((None,), ("float32",)),
    "image_size": ((2,), ("int32",)),
}
_STRINGS = ("name", "subset")
_OPTIONAL_SPECS = {
    "pt3d_68": ((68, 3), ("float32",)),
}
REQUIRED_DATASETS = tuple(_NUMERIC) + _STRINGS
REQUIRED_ATTRS = ("schema_version", "model_fingerprint", "uv_size", "seed", "jitter", "layout", "tool_version")
# Attributes that must agree with the manifest's settings.
_SETTING_ATTRS = ("seed", "jitter", "layout")

HIST_EDGES = tuple(range(-90, 91, 15))          # degrees
POSE_ANGLES = ("pitch", "yaw", "roll")          # pose columns 0, 1, 2 (radians)

GRID_COLUMNS = 4                                 # sample pairs (crop | position map) per row
CELL = 256                                       # crop and position map side in the grid
CAPTION = 22                                     # caption strip height below each pair


# ---------------------------------------------------------------------------
# The manifest


def load_manifest(out_dir) -> dict:
    """The parsed manifest.json of a shard folder; InputError (one line) when absent or malformed."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError(f"{out_dir}: shard folder not found")
    path = out_dir / MANIFEST
    if not path.is_file():
        raise InputError(f"{path}: missing (not a `prn-prep build` output folder?)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not readable JSON ({error})") from None
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(shards, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("file"), str) and "/" not in entry["file"]
            and isinstance(entry.get("samples"), int) for entry in shards):
        raise InputError(f"{path}: malformed (expected a 'shards' list of {{file, samples, sha256, bytes}})")
    return manifest


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _attr(value):
    """An HDF5 attribute as a plain Python value (numpy scalars and bytes unwrapped)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------------
# Verification


def verify_shards(out_dir) -> list[str]:
    """Problems of a shard folder, one line each naming the file; an empty list when all is well.

    Checks: manifest present and parseable; every listed shard exists with the
    manifest's size and sha256; every required dataset present with shape
    (N, ...) where N is the manifest's sample count of that shard, and dtype
    (posmap float16 or float32, as the manifest's settings say); the file
    attributes present, schema_version equal to SCHEMA_VERSION, the model
    fingerprint, uv_size, layout, seed and jitter the same in every shard and
    as the manifest; sample names unique across shards; the AFLW2000-3D
    datasets (pt3d_68) in all non-empty shards or none (all for
    layout aflw2000); no stray *.tmp files and no unlisted shard files.
    """
    out_dir = Path(out_dir)
    try:
        manifest = load_manifest(out_dir)
    except InputError as error:
        return [str(error)]
    manifest_path = out_dir / MANIFEST
    problems = []
    if manifest.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"{manifest_path}: schema_version {manifest.get('schema_version')!r}, "
                        f"expected {SCHEMA_VERSION}")
    listed = [entry["file"] for entry in manifest["shards"]]
    duplicates = sorted({name for name in listed if listed.count(name) > 1})
    if duplicates:
        problems.append(f"{manifest_path}: shards listed twice: {', '.join(duplicates)}")
    total = sum(entry["samples"] for entry in manifest["shards"])
    if manifest.get("samples") != total:
        problems.append(f"{manifest_path}: 'samples' is {manifest.get('samples')!r} but the shards hold {total}")

    settings = manifest.get("settings") or {}
    context = {"uv": manifest.get("uv_size", 256), "fingerprint": manifest.get("model_fingerprint"),
               "posmap_dtype": settings.get("posmap_dtype"), "settings": settings,
               "layout": settings.get("layout")}
    seen_names = {}
    widths = {}                      # shape_params / exp_params length -> first file
    optional_sets = []               # (file, frozenset of optional datasets) of non-empty shards
    for entry in manifest["shards"]:
        path = out_dir / entry["file"]
        if not path.is_file():
            problems.append(f"{path}: missing (listed in {MANIFEST})")
            continue
        size = path.stat().st_size
        if size != entry.get("bytes"):
            problems.append(f"{path}: {size} bytes, the manifest says {entry.get('bytes')}")
        if file_sha256(path) != entry.get("sha256"):
            problems.append(f"{path}: sha256 differs from the manifest (corrupted or replaced)")
        try:
            with h5py.File(path, "r") as handle:
                problems.extend(_check_shard(path, handle, entry["samples"], context, widths))
                if entry["samples"] > 0:
                    optional_sets.append((path, frozenset(name for name in OPTIONAL if name in handle)))
                if "name" in handle and h5py.check_string_dtype(handle["name"].dtype):
                    for name in handle["name"].asstr()[()]:
                        if name in seen_names:
                            problems.append(f"{path}: sample name {name!r} also in {seen_names[name]}")
                        else:
                            seen_names[name] = path.name
        except Exception as error:  # h5py raises OSError, KeyError, ValueError ... for damaged files
            problems.append(f"{path}: not a readable HDF5 shard ({_first_line(error)})")
    problems.extend(_check_optional(optional_sets, context["layout"]))

    for stray in sorted(out_dir.glob("*.tmp")):
        problems.append(f"{stray}: stray temporary file (an interrupted write?)")
    for unlisted in sorted({p.name for p in out_dir.glob("shard-*.h5")} - set(listed)):
        problems.append(f"{out_dir / unlisted}: shard file not listed in {MANIFEST}")
    return problems


def _check_shard(path, handle, n, context, widths):
    problems = []
    for name in REQUIRED_DATASETS:
        if name not in handle:
            problems.append(f"{path}: dataset '{name}' missing")
    for name, (tail, dtypes) in list(_NUMERIC.items()) + list(_OPTIONAL_SPECS.items()):
        if name not in handle:
            continue
        dataset = handle[name]
        expected = tuple(context["uv"] if dim == "uv" else dim for dim in tail)
        shape = dataset.shape
        if (len(shape) != 1 + len(expected) or shape[0] != n
                or any(want is not None and got != want for got, want in zip(shape[1:], expected))):
            wanted = ", ".join(["N=" + str(n)] + ["K" if dim is None else str(dim) for dim in expected])
            problems.append(f"{path}: dataset '{name}' has shape {shape}, expected ({wanted})")
        elif None in expected and n > 0:
            first = widths.setdefault(name, (shape[1], path.name))
            if first[0] != shape[1]:
                problems.append(f"{path}: dataset '{name}' has {shape[1]} columns, {first[1]} has {first[0]}")
        allowed = dtypes
        if name == "posmap" and context["posmap_dtype"] in dtypes:
            allowed = (context["posmap_dtype"],)
        if dataset.dtype.name not in allowed:
            problems.append(f"{path}: dataset '{name}' has dtype {dataset.dtype.name}, expected "
                            f"{' or '.join(allowed)}")
    for name in _STRINGS:
        if name not in handle:
            continue
        dataset = handle[name]
        if dataset.shape != (n,):
            problems.append(f"{path}: dataset '{name}' has shape {dataset.shape}, expected ({n},)")
        if h5py.check_string_dtype(dataset.dtype) is None:
            problems.append(f"{path}: dataset '{name}' has dtype {dataset.dtype}, expected UTF-8 strings")

    attrs = {key: _attr(value) for key, value in handle.attrs.items()}
    missing = [key for key in REQUIRED_ATTRS if key not in attrs]
    if missing:
        problems.append(f"{path}: attributes missing: {', '.join(missing)}")
    if "schema_version" in attrs and attrs["schema_version"] != SCHEMA_VERSION:
        problems.append(f"{path}: schema_version {attrs['schema_version']!r}, expected {SCHEMA_VERSION}")
    if "model_fingerprint" in attrs and attrs["model_fingerprint"] != context["fingerprint"]:
        problems.append(f"{path}: model_fingerprint {str(attrs['model_fingerprint'])[:12]}... differs from the "
                        f"manifest's {str(context['fingerprint'])[:12]}...")
    if "uv_size" in attrs and attrs["uv_size"] != context["uv"]:
        problems.append(f"{path}: uv_size {attrs['uv_size']!r}, the manifest says {context['uv']!r}")
    for key in _SETTING_ATTRS:
        if key in attrs and key in context["settings"] and attrs[key] != context["settings"][key]:
            problems.append(f"{path}: attribute {key} {attrs[key]!r}, the manifest says {context['settings'][key]!r}")
    return problems


def _check_optional(optional_sets, layout):
    """The AFLW2000-3D datasets in all non-empty shards or none (all for layout aflw2000)."""
    if not optional_sets:
        return []
    if layout in ("aflw2000", "300w-lp"):
        expected = frozenset(OPTIONAL) if layout == "aflw2000" else frozenset()
        source = f"layout {layout}"
    else:
        expected = optional_sets[0][1]
        source = f"as in {optional_sets[0][0].name}"
    problems = []
    for path, present in optional_sets:
        if present != expected:
            lacking, extra = sorted(expected - present), sorted(present - expected)
            parts = ([f"lacks {', '.join(lacking)}"] if lacking else []) + (
                [f"has unexpected {', '.join(extra)}"] if extra else [])
            problems.append(f"{path}: {'; '.join(parts)} ({source})")
    return problems


# ---------------------------------------------------------------------------
# Summary


def _open_shard(path):
    if not path.is_file():
        raise InputError(f"{path}: missing (listed in {MANIFEST}; run `prn-prep verify`)")
    try:
        return h5py.File(path, "r")
    except Exception as error:
        raise InputError(f"{path}: not a readable HDF5 shard ({_first_line(error)})") from None


def summarize_shards(out_dir) -> dict:
    """Counts and pose histograms of a shard folder (read from the shards themselves).

    Returns {"shards": [{"file", "samples"}], "subsets": {subset: n}, "total": n,
    "rejects": n, "histograms": {"pitch"|"yaw"|"roll": {"edges": [-90 ... 90],
    "counts": [...]}}}: bins of 15 degrees over [-90, 90], angles beyond the
    range counted in the end bins.
    """
    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    shards, subsets, poses = [], {}, []
    for entry in manifest["shards"]:
        path = out_dir / entry["file"]
        with _open_shard(path) as handle:
            try:
                subset = handle["subset"].asstr()[()]
                pose = np.asarray(handle["pose"][()], np.float64).reshape(-1, 7)
            except Exception as error:
                raise InputError(f"{path}: cannot read subset/pose ({_first_line(error)})") from None
        shards.append({"file": entry["file"], "samples": int(len(subset))})
        for name in subset:
            subsets[name] = subsets.get(name, 0) + 1
        poses.append(pose)
    poses = np.concatenate(poses) if poses else np.zeros((0, 7))
    edges = np.array(HIST_EDGES, np.float64)
    histograms = {}
    for column, angle in enumerate(POSE_ANGLES):
        degrees = np.clip(np.degrees(poses[:, column]), edges[0], edges[-1])
        counts, _ = np.histogram(degrees, bins=edges)
        histograms[angle] = {"edges": [int(e) for e in HIST_EDGES], "counts": [int(c) for c in counts]}
    return {"shards": shards, "subsets": dict(sorted(subsets.items())),
            "total": int(sum(s["samples"] for s in shards)),
            "rejects": len(manifest.get("rejects") or []), "histograms": histograms}


def format_summary(summary, out_dir=None, bar_width=40) -> str:
    """The summary as text: counts per shard and subset, rejects, pose histograms as bars."""
    lines = [f"{out_dir}: " if out_dir is not None else ""]
    lines[0] += (f"{summary['total']} samples in {len(summary['shards'])} shards, "
                 f"{summary['rejects']} rejected")
    lines.append("shards:")
    lines += [f"  {shard['file']}  {shard['samples']}" for shard in summary["shards"]]
    lines.append("subsets:")
    lines += [f"  {name:<12} {count}" for name, count in summary["subsets"].items()]
    for angle, hist in summary["histograms"].items():
        lines.append(f"{angle} (degrees):")
        peak = max(hist["counts"]) if hist["counts"] and max(hist["counts"]) else 1
        edges = hist["edges"]
        for low, high, count in zip(edges[:-1], edges[1:], hist["counts"]):
            close = "]" if high == edges[-1] else ")"
            bar = "#" * int(math.ceil(bar_width * count / peak)) if count else ""
            lines.append(f"  [{low:>4}, {high:>4}{close} {count:>6} {bar}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The grid


def uv_keypoints(manifest, uv_size=256):
    """(2, 68) landmark pixels (row 0 u = column, row 1 v = row) and where they came from.

    From the model folder the manifest's settings name when it exists, else the
    built-in model's assets in prn.uv_data.
    """
    model_dir = (manifest.get("settings") or {}).get("model_dir")
    if model_dir and Path(model_dir).is_dir():
        model = load_morphable_model(model_dir)
        return keypoint_pixels(model.uv, model.landmarks, uv_size), str(model_dir)
    from prn.uv_data import builtin_uv_dir
    return load_uv_assets(builtin_uv_dir(), uv_size).kpt, str(builtin_uv_dir())


def posmap_image(posmap) -> np.ndarray:
    """(S, S, 3) uint8 RGB: x, y, z each normalised to 0-255 over the covered pixels; black elsewhere."""
    posmap = np.asarray(posmap, np.float32)
    covered = np.any(posmap != 0, axis=-1) & np.isfinite(posmap).all(-1)
    out = np.zeros(posmap.shape, np.uint8)
    if covered.any():
        values = posmap[covered]
        low, high = values.min(0), values.max(0)
        scaled = (values - low) / np.maximum(high - low, 1e-6) * 255.0
        out[covered] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def grid_size(count):
    """(height, width) of a grid of `count` samples."""
    columns = max(1, min(count, GRID_COLUMNS))
    rows = max(1, math.ceil(count / columns))
    return rows * (CELL + CAPTION), columns * 2 * CELL


def _points(canvas, points, color, marker, scale=1.0):
    for x, y in np.asarray(points, np.float64)[:, :2] * scale:
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        centre = (int(round(x)), int(round(y)))
        if marker == "dot":
            cv2.circle(canvas, centre, 3, color, -1, cv2.LINE_AA)
        else:
            cv2.drawMarker(canvas, centre, color, cv2.MARKER_CROSS, 5, 1, cv2.LINE_8)


class SourceCrops:
    """The crops of the source shards an augmented shard was made from, looked up by name."""

    def __init__(self, folder):
        self.folder = folder
        self.index = None
        self.handles = {}

    def crop(self, name):
        """(256, 256, 3) uint8 RGB crop of a source sample, or None when the source shards are gone."""
        if self.index is None:
            self.index = {}
            for path in sorted(self.folder.glob("shard-*.h5")) if self.folder.is_dir() else []:
                try:
                    handle = self.handles[path] = h5py.File(path, "r")
                    for row, source in enumerate(handle["name"].asstr()[:]):
                        self.index[source] = (handle, row)
                except (OSError, KeyError):
                    continue
        if name not in self.index:
            return None
        handle, row = self.index[name]
        return handle["image"][row]

    def close(self):
        for handle in self.handles.values():
            handle.close()


def draw_grid(out_dir, path, count=16, seed=0) -> dict:
    """Write a PNG grid of `count` samples chosen by `seed` (sorted, without replacement).

    Each sample: the crop with its kpt68 landmarks (green dots) and the
    landmarks read from the position map at uv_kpt_ind (red crosses; they
    should sit on the dots), and next to it the position map (x, y, z as RGB,
    normalised per sample, uncovered pixels black) with the uv_kpt_ind pixels
    marked (yellow); for augmented shards the source sample's crop instead of
    the map, so source and new view sit side by side; a caption with the name
    and the yaw in degrees.
    Returns {"path", "samples": [names], "keypoints_from": source,
    "max_landmark_gap": px between kpt68 and the position map's landmarks}.
    """
    out_dir, path = Path(out_dir), Path(path)
    manifest = load_manifest(out_dir)
    counts = [entry["samples"] for entry in manifest["shards"]]
    total = sum(counts)
    if total == 0:
        raise InputError(f"{out_dir / MANIFEST}: no samples to draw")
    count = max(1, min(int(count), total))
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
    starts = np.cumsum([0] + counts)
    uv_size = int(manifest.get("uv_size", 256))
    kpt_uv, source = uv_keypoints(manifest, uv_size)

    height, width = grid_size(count)
    canvas = np.zeros((height, width, 3), np.uint8)          # RGB
    columns = width // (2 * CELL)
    names, gap = [], 0.0
    handles = {}
    sources = SourceCrops(Path(manifest.get("inputs", {}).get("root", "")))
    try:
        for slot, index in enumerate(chosen):
            shard = int(np.searchsorted(starts, index, side="right") - 1)
            local = int(index - starts[shard])
            file = manifest["shards"][shard]["file"]
            if file not in handles:
                handles[file] = _open_shard(out_dir / file)
            handle = handles[file]
            try:
                image = handle["image"][local]
                posmap = np.asarray(handle["posmap"][local], np.float32)
                kpt68 = handle["kpt68"][local]
                yaw = math.degrees(float(handle["pose"][local][1]))
                name = handle["name"].asstr()[local]
            except Exception as error:
                raise InputError(f"{out_dir / file}: cannot read sample {local} ({_first_line(error)})") from None
            from_map = posmap[kpt_uv[1], kpt_uv[0]]
            gap = max(gap, float(np.abs(from_map[:, :2] - kpt68[:, :2]).max()))
            names.append(name)

            crop = np.ascontiguousarray(image)
            if crop.shape[:2] != (CELL, CELL):
                scale = CELL / crop.shape[1]
                crop = cv2.resize(crop, (CELL, CELL), interpolation=cv2.INTER_AREA)
            else:
                scale = 1.0
            _points(crop, kpt68, (0, 255, 0), "dot", scale)
            _points(crop, from_map, (255, 0, 0), "cross", scale)
            uv_view = posmap_image(posmap)
            uv_scale = CELL / uv_view.shape[1]
            if uv_view.shape[:2] != (CELL, CELL):
                uv_view = cv2.resize(uv_view, (CELL, CELL), interpolation=cv2.INTER_NEAREST)
            _points(uv_view, kpt_uv.T + 0.0, (255, 255, 0), "cross", uv_scale)
            if "source_name" in handle:  # an augmented shard: the source view instead of the map
                source_view = sources.crop(handle["source_name"].asstr()[local])
                if source_view is not None:
                    uv_view = cv2.resize(source_view, (CELL, CELL), interpolation=cv2.INTER_AREA)

            row, column = divmod(slot, columns)
            top, left = row * (CELL + CAPTION), column * 2 * CELL
            canvas[top:top + CELL, left:left + CELL] = crop
            canvas[top:top + CELL, left + CELL:left + 2 * CELL] = uv_view
            cv2.line(canvas, (left + CELL, top), (left + CELL, top + CELL - 1), (90, 90, 90), 1)
            caption = f"{name}  yaw {yaw:+.1f}"
            cv2.putText(canvas, caption, (left + 4, top + CELL + CAPTION - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (255, 255, 255), 1, cv2.LINE_AA)
    finally:
        for handle in handles.values():
            handle.close()
        sources.close()

    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, canvas)
    return {"path": str(path), "samples": names, "keypoints_from": source, "max_landmark_gap": gap}
