"""UV-space assets of a morphable model (docs/formats.md section 5).

For a UV size S: the pixel of each landmark (`uv_kpt_ind.txt`), the face mask
and its pixel list (`uv_face_mask.png`, `face_ind.txt`), a triangulation of
the mask's pixel grid (`triangles.txt`), the mean face's position map at
those pixels (`canonical_vertices.npy`) and one loss weight mask per preset
(`weight_mask_<preset>.npy` + a PNG preview). Everything is derived from the
model's UV unwrap and landmarks, so it works for any model.
"""

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prn.rendering.geometry.crop import crop_box, crop_transform, positions_in_crop
from prn.rendering.morphable.bfm import MorphableModel
from prn.rendering.raster.rasterizer import PixelTable, gather, pixel_table, rasterize
from prn.rendering.util.atomic import atomic_path, write_png
from prn.rendering.util.errors import InputError, first_line

# Relative weights of the regions: 68 landmarks : eyes, nose, mouth : other face : neck.
WEIGHT_PRESETS = {
    "weight1": (1, 1, 1, 0),
    "weight2": (3, 2, 1, 0),
    "weight3": (10, 3, 2, 0),
    "prnet": (16, 4, 3, 0),
}
# Region sizes in pixels of a 256 map; scaled with the map size.
KEYPOINT_RADIUS = 1.0
FEATURE_MARGIN = 6.0
FEATURE_POLYGONS = (range(36, 42), range(42, 48), range(27, 36), range(48, 60))
JAW = range(0, 17)
MODEL_RECORD = "model.json"   # {"size", "model_fingerprint"} of the model the assets belong to


def uv_pixel_coords(uv, size) -> np.ndarray:
    """uv (n, 2) in [0, 1] -> (n, 2) float64 pixel (column u, row v) of an S x S map."""
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([uv[:, 0] * (size - 1), (size - 1) - uv[:, 1] * (size - 1)], axis=1)


def uv_render_vertices(uv, size) -> np.ndarray:
    """(n, 3) float32 vertices for rasterizing in UV space: pixel coords and z = 0."""
    pixels = uv_pixel_coords(uv, size)
    return np.concatenate([pixels, np.zeros((len(pixels), 1))], axis=1).astype(np.float32)


def full_triangles(face_model: MorphableModel) -> np.ndarray:
    """The model's triangles plus those closing the mouth, (m + k, 3) int32."""
    return np.concatenate([face_model.triangles, face_model.mouth_triangles]).astype(np.int32)


def uv_table(face_model: MorphableModel, size=256) -> PixelTable:
    """Pixel -> (3 vertex ids, 3 weights) table of the model's UV map.

    In UV space coverage and barycentric weights are the same for every
    sample, so a position map is then one gather.
    """
    return pixel_table(uv_render_vertices(face_model.uv, size), full_triangles(face_model), size, size)


def keypoint_pixels(uv, landmarks, size) -> np.ndarray:
    """(2, 68) int64: row 0 = round(u), row 1 = round(v) of the landmark vertices (halves round up)."""
    pixels = uv_pixel_coords(np.asarray(uv)[landmarks], size)
    return np.floor(pixels + 0.5).astype(np.int64).T


def coverage_mask(face_model: MorphableModel, size, vertex_subset=None) -> np.ndarray:
    """(S, S) bool: pixels covered by the triangles whose 3 vertices are all in the subset."""
    triangles = full_triangles(face_model)
    if vertex_subset is not None:
        member = np.zeros(face_model.n_vertices, bool)
        member[vertex_subset] = True
        triangles = triangles[member[triangles].all(axis=1)]
        if len(triangles) == 0:
            raise InputError("the face vertex list covers no triangle of the model")
    raster = rasterize(uv_render_vertices(face_model.uv, size), triangles, size, size)
    return raster.triangle_ids >= 0


def grid_triangles(mask) -> np.ndarray:
    """Triangles over the pixel grid of a mask, (t, 3) int64 indices into its row-major pixel list.

    Each grid square contributes (top-left, bottom-left, top-right) and
    (top-right, bottom-left, bottom-right) when those pixels are in the mask.
    """
    index = np.full(mask.shape, -1, np.int64)
    index[mask] = np.arange(int(mask.sum()))
    top_left, top_right = index[:-1, :-1], index[:-1, 1:]
    bottom_left, bottom_right = index[1:, :-1], index[1:, 1:]
    upper = np.stack([top_left, bottom_left, top_right], -1).reshape(-1, 3)
    lower = np.stack([top_right, bottom_left, bottom_right], -1).reshape(-1, 3)
    triangles = np.concatenate([upper[(upper >= 0).all(1)], lower[(lower >= 0).all(1)]])
    return triangles[np.lexsort(triangles.T[::-1])]


def canonical_vertices(face_model: MorphableModel, table: PixelTable, face_ind) -> np.ndarray:
    """The mean face, frontal, in its own training crop, at the face pixels: (f, 3) float32.

    Image-like axes (x right, y down, z towards the viewer, min z 0), crop of
    docs/formats.md section 6 at the map size. Used to estimate head pose from a
    predicted position map.
    """
    vertices = face_model.mean.reshape(-1, 3).astype(np.float64) * np.array([1.0, -1.0, 1.0])
    transform = crop_transform(*crop_box(vertices[face_model.landmarks, :2]), out_size=table.height)
    position_map = gather(table, positions_in_crop(vertices, transform))
    return position_map.reshape(-1, 3)[face_ind].astype(np.float32)


def region_masks(face_model: MorphableModel, size, face_mask, kpt) -> dict:
    """The four loss regions as (S, S) bool masks: keypoints, features, face, neck."""
    scale = size / 256
    model_region = coverage_mask(face_model, size)
    rows, cols = np.mgrid[:size, :size]

    keypoints = np.zeros((size, size), bool)
    radius = KEYPOINT_RADIUS * scale
    for u, v in kpt.T:
        keypoints |= (cols - u) ** 2 + (rows - v) ** 2 <= radius ** 2 + 1e-9

    features = np.zeros((size, size), np.uint8)
    for polygon in FEATURE_POLYGONS:
        hull = cv2.convexHull(kpt.T[list(polygon)].astype(np.int32))
        cv2.fillConvexPoly(features, hull, 1)
    margin = max(1, int(round(FEATURE_MARGIN * scale)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    features = cv2.dilate(features, kernel).astype(bool)

    jaw_u, jaw_v = kpt[0, list(JAW)], kpt[1, list(JAW)]
    order = np.argsort(jaw_u, kind="stable")
    jaw_row = np.interp(np.arange(size), jaw_u[order], jaw_v[order])
    neck = model_region & (rows > jaw_row[None, :])

    return {"keypoints": keypoints & model_region, "features": features & model_region,
            "face": face_mask, "neck": neck}


def weight_mask(regions, preset) -> np.ndarray:
    """(S, S) float32 loss weights of a preset, scaled so the largest weight is 1."""
    if preset not in WEIGHT_PRESETS:
        raise InputError(f"unknown weight preset '{preset}', expected one of {', '.join(WEIGHT_PRESETS)}")
    keypoint, feature, face, neck = np.array(WEIGHT_PRESETS[preset], np.float64) / max(WEIGHT_PRESETS[preset])
    weights = np.zeros(regions["face"].shape, np.float32)
    weights[regions["face"]] = face
    weights[regions["features"]] = feature
    weights[regions["neck"]] = neck
    weights[regions["keypoints"]] = keypoint
    return weights


@dataclass
class UVAssets:
    """Everything `prn-prep uv-data` writes, as arrays."""

    size: int
    kpt: np.ndarray            # (2, 68) int64 pixel column, row
    face_mask: np.ndarray      # (S, S) bool
    face_ind: np.ndarray       # (f,) int64 row-major pixel indices
    triangles: np.ndarray      # (t, 3) int64 indices into face_ind
    canonical: np.ndarray      # (f, 3) float32
    weights: dict              # preset -> (S, S) float32
    face_model_fingerprint: str     # MorphableModel.fingerprint of the model they were computed from


def compute_uv_assets(face_model: MorphableModel, size=256, face_vertices=None) -> UVAssets:
    """All UV assets of a model. face_vertices (f,) 0-based; default: the model's list, else all."""
    if size < 16:
        raise InputError(f"UV size must be at least 16, got {size}")
    if face_vertices is None:
        face_vertices = face_model.face_vertices
    kpt = keypoint_pixels(face_model.uv, face_model.landmarks, size)
    face_mask = coverage_mask(face_model, size, face_vertices)
    face_ind = np.flatnonzero(face_mask)
    regions = region_masks(face_model, size, face_mask, kpt)
    return UVAssets(
        size=size,
        kpt=kpt,
        face_mask=face_mask,
        face_ind=face_ind,
        triangles=grid_triangles(face_mask),
        canonical=canonical_vertices(face_model, uv_table(face_model, size), face_ind),
        weights={preset: weight_mask(regions, preset) for preset in WEIGHT_PRESETS},
        face_model_fingerprint=face_model.fingerprint,
    )


def _write_txt(path, array):
    with atomic_path(path) as tmp:
        np.savetxt(tmp, array, fmt="%d")


def _write_npy(path, array):
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def write_uv_assets(assets: UVAssets, folder) -> list[Path]:
    """Write the assets into a folder, each file atomically. Returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def out(name):
        written.append(folder / name)
        return folder / name

    _write_txt(out("uv_kpt_ind.txt"), assets.kpt)
    write_png(out("uv_face_mask.png"), assets.face_mask.astype(np.uint8) * 255)
    _write_txt(out("face_ind.txt"), assets.face_ind)
    _write_txt(out("triangles.txt"), assets.triangles)
    _write_npy(out("canonical_vertices.npy"), assets.canonical)
    for preset, weights in assets.weights.items():
        _write_npy(out(f"weight_mask_{preset}.npy"), weights)
        write_png(out(f"weight_mask_{preset}.png"), np.round(weights * 255).astype(np.uint8))
    with atomic_path(out(MODEL_RECORD)) as tmp:
        tmp.write_text(json.dumps({"model_fingerprint": assets.face_model_fingerprint, "size": assets.size},
                                  sort_keys=True) + "\n")
    return written


@dataclass(frozen=True)
class UVAssetFolder:
    """A UV asset folder read back and checked: what position maps are read with.

    `model_fingerprint` names the morphable model the assets were computed
    from (None for a folder that does not record it, e.g. the original PRN's).
    """

    folder: Path
    size: int                 # UV map side S
    kpt: np.ndarray           # (2, 68) int64 landmark pixel column, row
    face_ind: np.ndarray      # (f,) int64 row-major face pixels: the dense face's vertices
    triangles: np.ndarray     # (t, 3) int64 indices into face_ind
    canonical: np.ndarray     # (f, 3) float64 mean face at face_ind
    face_model_fingerprint: str | None

    def keypoints(self, size) -> np.ndarray:
        """(2, 68) int64 landmark pixels on a size x size map (nearest pixel of the scaled position)."""
        if size == self.size:
            return self.kpt.copy()
        return np.minimum(np.round(self.kpt * size / self.size).astype(np.int64), size - 1)

    def weight_mask(self, preset, size=None) -> np.ndarray:
        """(size, size) float32 loss weights of a preset (weight_mask_<preset>.npy), area-resized if needed."""
        if preset not in WEIGHT_PRESETS:
            raise InputError(f"unknown weight preset '{preset}', expected one of {', '.join(WEIGHT_PRESETS)}")
        path = self.folder / f"weight_mask_{preset}.npy"
        try:
            mask = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: cannot read the weight mask ({first_line(error)})") from None
        numeric = np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)
        if not numeric or mask.shape != (self.size, self.size) or not np.isfinite(mask).all() or mask.min() < 0 \
                or mask.sum() <= 0:
            raise InputError(f"{path}: expected a {self.size} x {self.size} weight mask of finite numbers >= 0, "
                             f"not all 0; got {mask.dtype} {mask.shape}")
        mask = mask.astype(np.float32)
        size = self.size if size is None else size
        if size != self.size:
            mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(mask)


def _read_record(folder):
    path = folder / MODEL_RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not readable JSON ({first_line(error)})") from None
    if not isinstance(record, dict) or not isinstance(record.get("size"), int) or \
            not isinstance(record.get("model_fingerprint"), str):
        raise InputError(f"{path}: expected {{\"size\": int, \"model_fingerprint\": str}}")
    return record


def load_uv_assets(folder, size=None) -> UVAssetFolder:
    """The UV assets of a folder written by `prn-prep uv-data` (or the original PRN's uv-data folder).

    Reads uv_kpt_ind.txt, face_ind.txt, triangles.txt, canonical_vertices.npy
    and model.json (size and model fingerprint; without it the size is the
    face mask's, else 256). InputError (one line, naming the file) when a file
    is missing, unreadable or does not fit the others, or when `size` is given
    and differs from the assets' size.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: UV asset folder not found")
    record = _read_record(folder)
    wanted, size = size, record.get("size") or _mask_size(folder) or 256
    if wanted is not None and wanted != size:
        raise InputError(f"{folder}: UV assets for {size} x {size} maps, these maps are {wanted} x {wanted}")

    def read(name, reader, dtype):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")   # numpy warns, then returns an empty array, for a file of no numbers
                value = reader(folder / name)
                if np.iscomplexobj(value) or not np.issubdtype(value.dtype, np.number):
                    raise ValueError(f"holds {value.dtype} values, expected real numbers")
                value = value.astype(dtype)
        except (OSError, ValueError, UserWarning) as error:
            raise InputError(f"{folder / name}: unreadable ({first_line(error)})") from None
        return value

    kpt = read("uv_kpt_ind.txt", lambda path: np.loadtxt(path, ndmin=2), np.int64)
    face_ind = read("face_ind.txt", lambda path: np.loadtxt(path, ndmin=1), np.int64).reshape(-1)
    triangles = read("triangles.txt", lambda path: np.loadtxt(path, ndmin=2), np.int64)
    canonical = read("canonical_vertices.npy", lambda path: np.load(path, allow_pickle=False), np.float64)
    if kpt.shape != (2, 68) or kpt.min() < 0 or kpt.max() >= size:
        raise InputError(f"{folder / 'uv_kpt_ind.txt'}: expected (2, 68) pixels inside a {size} x {size} map, "
                         f"got shape {kpt.shape}")
    if len(face_ind) < 3 or face_ind.min() < 0 or face_ind.max() >= size * size:
        raise InputError(f"{folder / 'face_ind.txt'}: expected at least 3 pixel indices of a {size} x {size} map")
    if canonical.shape != (len(face_ind), 3) or not np.isfinite(canonical).all():
        raise InputError(f"{folder / 'canonical_vertices.npy'}: has shape {canonical.shape}, expected "
                         f"({len(face_ind)}, 3) finite values like face_ind.txt")
    if triangles.shape[1:] != (3,) or not len(triangles) or triangles.min() < 0 \
            or triangles.max() >= len(face_ind):
        raise InputError(f"{folder / 'triangles.txt'}: expected (t, 3) indices below {len(face_ind)}")
    return UVAssetFolder(folder=folder, size=size, kpt=kpt, face_ind=face_ind, triangles=triangles,
                         canonical=canonical, face_model_fingerprint=record.get("model_fingerprint"))


def _mask_size(folder):
    mask = cv2.imread(str(folder / "uv_face_mask.png"), cv2.IMREAD_GRAYSCALE)
    return None if mask is None else mask.shape[0]
