"""Looking at a shard folder written by `prn-prep build` (checking it: prn.pipeline.verify).

`summarize_shards` counts samples per shard and subset and histograms the
poses; `draw_grid` writes a PNG contact sheet of crops with their landmarks
next to the visualised position maps.
"""

import math
from pathlib import Path

import cv2
import numpy as np

from prn.pipeline.face_match import manifest_claim, resolve
from prn.pipeline.shards import MANIFEST, UV_SIZE, ShardFolder
from prn.pipeline.stage import worker_morphable_model
from prn.rendering.morphable.uv_assets import keypoint_pixels
from prn.rendering.raster.pictures import draw_landmarks, posmap_picture
from prn.rendering.util.atomic import write_png
from prn.rendering.util.errors import InputError

HIST_EDGES = tuple(range(-90, 91, 15))          # degrees
POSE_ANGLES = ("pitch", "yaw", "roll")          # pose columns 0, 1, 2 (radians)

GRID_COLUMNS = 4                                 # sample pairs (crop | position map) per row
CELL = 256                                       # crop and position map side in the grid
CAPTION = 22                                     # caption strip height below each pair


# ---------------------------------------------------------------------------
# Summary


def summarize_shards(out_dir) -> dict:
    """Counts and pose histograms of a shard folder (read from the shards themselves).

    Returns {"shards": [{"file", "samples"}], "subsets": {subset: n}, "total": n,
    "rejects": n, "histograms": {"pitch"|"yaw"|"roll": {"edges": [-90 ... 90],
    "counts": [...]}}}: bins of 15 degrees over [-90, 90], angles beyond the
    range counted in the end bins.
    """
    shards, subsets, poses = [], {}, []
    with ShardFolder(out_dir) as folder:
        manifest = folder.manifest
        for shard, file in enumerate(folder.files):
            columns = folder.read(shard, ("subset", "pose"))
            shards.append({"file": file, "samples": int(len(columns["subset"]))})
            for name in columns["subset"]:
                subsets[name] = subsets.get(name, 0) + 1
            poses.append(np.asarray(columns["pose"], np.float64).reshape(-1, 7))
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


def uv_keypoints(manifest, owner, uv_size=UV_SIZE):
    """(2, 68) landmark pixels (row 0 u = column, row 1 v = row) and where they came from.

    From the UV assets of the face model the shards were built with, else from
    that face model's folder (pipeline/face_match.py finds both); InputError
    when neither is there. owner: the shards in words, for messages.
    """
    claim = manifest_claim(manifest, owner)
    try:
        uv = resolve([claim], uv=True, uv_size=uv_size).uv
        return uv.kpt, str(uv.folder)
    except InputError:
        folder = resolve([claim], face_model="optional").face_model_dir
    if folder is None:
        raise InputError(f"{owner}: neither their face model {claim.describe()} nor UV assets of it are there; the "
                         "grid needs its UV landmark pixels")
    face_model = worker_morphable_model(folder)
    return keypoint_pixels(face_model.uv, face_model.landmarks, uv_size), str(folder)


def grid_size(count):
    """(height, width) of a grid of `count` samples."""
    columns = max(1, min(count, GRID_COLUMNS))
    rows = max(1, math.ceil(count / columns))
    return rows * (CELL + CAPTION), columns * 2 * CELL


class SourceCrops:
    """The crops of the source shards an augmented shard was made from, looked up by name."""

    def __init__(self, folder):
        self.folder = folder
        self.shards = None
        self.index = None

    def crop(self, name):
        """(C, C, 3) uint8 RGB crop of a source sample, or None when the source shards are gone."""
        if self.index is None:
            self.index = {}
            try:
                self.shards = ShardFolder(self.folder)
            except InputError:
                return None
            for shard in self.shards.nonempty():
                try:
                    names = self.shards.read(shard, ("name",))["name"]
                except InputError:
                    continue
                self.index.update((source, (shard, row)) for row, source in enumerate(names))
        if name not in self.index:
            return None
        shard, row = self.index[name]
        return self.shards.read(shard, ("image",), row)["image"]

    def close(self):
        if self.shards is not None:
            self.shards.close()


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
    folder = ShardFolder(out_dir)
    manifest = folder.manifest
    total = len(folder)
    if total == 0:
        raise InputError(f"{out_dir / MANIFEST}: no samples to draw")
    count = max(1, min(int(count), total))
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
    kpt_uv, source = uv_keypoints(manifest, f"the shards {out_dir}", folder.uv_size)

    height, width = grid_size(count)
    canvas = np.zeros((height, width, 3), np.uint8)          # RGB
    columns = width // (2 * CELL)
    names, gap = [], 0.0
    sources = SourceCrops(Path(manifest.get("inputs", {}).get("root", "")))
    try:
        for slot, index in enumerate(chosen):
            shard, local = folder.locate(int(index))
            sample = folder.read(shard, ("image", "posmap", "kpt68", "pose", "name"), local)
            image, kpt68, name = sample["image"], sample["kpt68"], sample["name"]
            posmap = np.asarray(sample["posmap"], np.float32)
            yaw = math.degrees(float(sample["pose"][1]))
            from_map = posmap[kpt_uv[1], kpt_uv[0]]
            gap = max(gap, float(np.abs(from_map[:, :2] - kpt68[:, :2]).max()))
            names.append(name)

            crop = np.ascontiguousarray(image)
            if crop.shape[:2] != (CELL, CELL):
                scale = CELL / crop.shape[1]
                crop = cv2.resize(crop, (CELL, CELL), interpolation=cv2.INTER_AREA)
            else:
                scale = 1.0
            draw_landmarks(crop, kpt68, (0, 255, 0), "dot", 3, scale)
            draw_landmarks(crop, from_map, (255, 0, 0), "cross", 5, scale)
            uv_view = posmap_picture(posmap)
            uv_scale = CELL / uv_view.shape[1]
            if uv_view.shape[:2] != (CELL, CELL):
                uv_view = cv2.resize(uv_view, (CELL, CELL), interpolation=cv2.INTER_NEAREST)
            draw_landmarks(uv_view, kpt_uv.T, (255, 255, 0), "cross", 5, uv_scale)
            if "source_name" in folder.fields(shard):  # an augmented shard: the source view instead of the map
                source_view = sources.crop(folder.read(shard, ("source_name",), local)["source_name"])
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
        folder.close()
        sources.close()

    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, canvas)
    return {"path": str(path), "samples": names, "keypoints_from": source, "max_landmark_gap": gap}
