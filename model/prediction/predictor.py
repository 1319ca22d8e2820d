"""`prn-predict`'s flow: photos -> face boxes -> 256 x 256 crops -> position maps -> 3D faces and their files.

Per image: the faces come from one `bbox` for every image, from a boxes file
(image file name -> boxes), or from the Haar-cascade detector. A box partly
outside the image is clipped to it; one wholly outside is an error. Each box
gives a crop as the original PRN crops a detector box (formats.md section 6:
`old = (w + h) / 2`, centre moved down by 0.14 old, side 1.58 old); the crops
of several images go through the network in batches; each position map is
mapped back to the photo by the inverse crop similarity ((x, y) by its
inverse, z divided by its scale).

Coordinates in the JSON and the depth map: image pixels, x right, y down, z
towards the viewer (its origin is arbitrary: the crop's). Meshes are written
y-up, in the 300W-LP frame (formats.md section 3): (x, H - 1 - y, z), which
is right-handed, with the triangles wound counter-clockwise seen from the
front, so viewers light the face's outside.

Files per image `<stem>` (a repeated stem gets `-2`, `-3`, ...):
`<stem>.json` (image size, per face: box, box_source, landmarks68, pose_deg,
mesh), `<stem>_<k>.obj` or `.ply` per face (the dense face at face_ind,
colours sampled from the photo; rendering/mesh_io.py), `<stem>_depth.png`
(8-bit: 0 background, 1-255 the rendered faces' z from far to near) and
`<stem>_vis.png` (the photo, the faces shaded over it, landmarks and boxes).
Every file is written under a temporary name and renamed.
"""

import importlib.util
import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from prn.model.data import CROP
from prn.model.inference import load_trained, predict_posmaps
from prn.model.prediction.detect import cascades, detect_faces
from prn.model.training.train import TrainConfig
from prn.pipeline.datasets import read_image
from prn.rendering.files.meshes import write_obj, write_ply
from prn.rendering.geometry.crop import crop_to_image, crop_transform, detector_crop
from prn.rendering.geometry.head_pose import estimate_pose
from prn.rendering.morphable.uv_assets import UVAssetFolder, load_uv_assets
from prn.rendering.raster.rasterizer import rasterize, render_colors
from prn.rendering.raster.shading import vertex_normals
from prn.rendering.raster.texture import sample_bilinear
from prn.rendering.util.atomic import atomic_path, write_png
from prn.rendering.util.errors import InputError
from prn.uv_data import builtin_uv_dir

MESH_WRITERS = {"obj": write_obj, "ply": write_ply}
ONNX_OPSET = 17


# ---------------------------------------------------------------------------
# The network and its UV assets


def load_uv_mesh(uv_dir) -> UVAssetFolder:
    """The 256 x 256 UV assets of a folder, triangles wound counter-clockwise seen from the front with y up."""
    uv = load_uv_assets(uv_dir, CROP)
    # The winding is the same on every face the network predicts, so the
    # canonical face decides it once: front faces should point to +z with y up.
    a, b, c = (uv.canonical[uv.triangles[:, i]] * (1, -1, 1) for i in range(3))
    if np.cross(b - a, c - a)[:, 2].sum() < 0:
        uv = replace(uv, triangles=np.ascontiguousarray(uv.triangles[:, [0, 2, 1]]))
    return uv


@dataclass(frozen=True)
class Predictor:
    network: torch.nn.Module
    config: TrainConfig
    uv: UVAssetFolder
    device: str
    batch_size: int


def load_predictor(checkpoint, uv_dir=None, device="cpu", batch_size=16) -> Predictor:
    """The checkpoint's network and the UV assets: `uv_dir`, else the ones it was trained with, else the built-in."""
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")
    network, config = load_trained(checkpoint, device)
    if uv_dir is None:
        uv_dir = config.uv_dir if config.uv_dir and Path(config.uv_dir).is_dir() else builtin_uv_dir()
    return Predictor(network, config, load_uv_mesh(uv_dir), device, batch_size)


def export_onnx(checkpoint, path, opset=ONNX_OPSET):
    """Write the checkpoint's network as ONNX: input `image` (B, 3, S, S) in [0, 1], output `posmap`.

    `posmap` (B, 3, S, S) is the position map divided by 256 * 1.1, as the
    network predicts it; B is a dynamic axis. Uses torch's TorchScript-based
    exporter (dynamo=False), which needs no onnxscript and writes this opset.
    """
    if importlib.util.find_spec("onnx") is None:
        raise InputError("--export-onnx needs the onnx package: pip install 'prn-toolkit[onnx]'")
    network, config = load_trained(checkpoint, "cpu")
    example = torch.zeros(1, 3, config.size, config.size)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and constant-folding notices
        torch.onnx.export(network, (example,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=["posmap"],
                          dynamic_axes={"image": {0: "batch"}, "posmap": {0: "batch"}})


# ---------------------------------------------------------------------------
# Boxes and crops


def read_boxes_file(path) -> dict:
    """{image file name: (k, 4) float64 boxes [x0, y0, x1, y1]} from a JSON mapping name -> list of boxes."""
    try:
        listed = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable JSON boxes file ({str(error).splitlines()[0][:200]})") from None
    if not isinstance(listed, dict):
        raise InputError(f"{path}: expected a mapping image file name -> list of [x0, y0, x1, y1]")
    boxes = {name: _box_list(entries) for name, entries in listed.items()}
    for name, values in boxes.items():
        if values is None:
            raise InputError(f"{path}: the boxes of '{name}' are not a list of [x0, y0, x1, y1]")
    return boxes


def _box_list(entries):
    """(k, 4) float64 from a JSON list of [x0, y0, x1, y1] lists, or None when it is not one."""
    if not isinstance(entries, list) or not all(isinstance(box, list) and len(box) == 4 for box in entries):
        return None
    try:
        values = np.array(entries, dtype=np.float64).reshape(-1, 4)
    except (TypeError, ValueError):
        return None
    return values if np.isfinite(values).all() else None


def clip_box(box, width, height) -> np.ndarray:
    """A box [x0, y0, x1, y1] clipped to a width x height image; InputError when it is empty or wholly outside."""
    x0, y0, x1, y1 = (float(value) for value in box)
    if not (x1 > x0 and y1 > y0):
        raise InputError(f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is empty: need x0 < x1 and y0 < y1")
    clipped = np.array([max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))])
    if not (clipped[2] > clipped[0] and clipped[3] > clipped[1]):
        raise InputError(f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] lies outside the {width} x {height} image")
    return clipped


def crop_faces(image, boxes):
    """RGB uint8 image (h, w, 3), boxes (k, 4) -> crops (k, 256, 256, 3) uint8, image-to-crop similarities (k, 3, 3)."""
    transforms = np.array([crop_transform(*detector_crop(box), out_size=CROP) for box in boxes]).reshape(-1, 3, 3)
    crops = np.array([cv2.warpAffine(image, transform[:2], (CROP, CROP), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                      for transform in transforms], dtype=np.uint8).reshape(-1, CROP, CROP, 3)
    return crops, transforms


# ---------------------------------------------------------------------------
# One image


@dataclass
class Photo:
    """An image with its faces cropped, waiting for the network."""

    path: Path
    stem: str
    image: np.ndarray       # (h, w, 3) uint8 RGB
    boxes: np.ndarray       # (k, 4) face boxes clipped to the image, pixels
    clipped: np.ndarray     # (k,) bool: the box given reached outside the image
    box_source: str         # "bbox", "boxes file" or "detector"
    crops: np.ndarray       # (k, 256, 256, 3) uint8
    transforms: np.ndarray  # (k, 3, 3) image -> crop


def prepare_photo(path, stem, boxes=None, box_source="detector") -> Photo:
    """Read the image, find (boxes None) or clip its face boxes, crop them; InputError naming the file."""
    path = Path(path)
    image = read_image(path)
    height, width = image.shape[:2]
    if boxes is None:
        try:
            boxes = detect_faces(image)
        except InputError as error:
            raise InputError(f"{path}: {error}") from None
    if len(boxes) == 0:
        raise InputError(f"{path}: no face found")
    try:
        inside = np.array([clip_box(box, width, height) for box in boxes])
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    crops, transforms = crop_faces(image, inside)
    return Photo(path, stem, image, inside, (inside != boxes).any(axis=1), box_source, crops, transforms)


@dataclass
class Face:
    """One predicted face in image coordinates (x right, y down, z towards the viewer)."""

    box: np.ndarray         # (4,)
    landmarks: np.ndarray   # (68, 3)
    dense: np.ndarray       # (f, 3) the face_ind points: the mesh vertices
    pose_deg: np.ndarray    # (3,) pitch, yaw, roll in degrees (300W-LP convention)


def faces_in_image(photo: Photo, posmaps, uv: UVAssetFolder) -> list:
    """Faces from the crops' position maps (k, 256, 256, 3), 256-crop pixels, moved back into the photo."""
    points = crop_to_image(posmaps.reshape(len(posmaps), -1, 3), photo.transforms).reshape(posmaps.shape)
    faces = []
    for box, image_map in zip(photo.boxes, points):
        dense = image_map.reshape(-1, 3)[uv.face_ind]
        pose = np.degrees(estimate_pose(dense, uv.canonical))
        faces.append(Face(box, image_map[uv.kpt[1], uv.kpt[0]], dense, pose))
    return faces


def write_photo_outputs(photo: Photo, faces, uv: UVAssetFolder, out_dir, mesh_format="obj") -> Path:
    """Write the image's meshes, depth map, overlay and (last) JSON into out_dir; returns the JSON path."""
    out_dir = Path(out_dir)
    height = photo.image.shape[0]
    records = []
    for number, face in enumerate(faces):
        mesh_name = f"{photo.stem}_{number}.{mesh_format}"
        colors = np.clip(np.rint(sample_bilinear(photo.image, face.dense[:, :2])), 0, 255).astype(np.uint8)
        y_up = face.dense * (1, -1, 1) + (0, height - 1, 0)
        MESH_WRITERS[mesh_format](out_dir / mesh_name, y_up, uv.triangles, colors)
        records.append({
            "box": _rounded(face.box, 2),
            "box_source": photo.box_source,
            "box_clipped": bool(photo.clipped[number]),
            "landmarks68": _rounded(face.landmarks, 3),
            "pose_deg": dict(zip(("pitch", "yaw", "roll"), _rounded(face.pose_deg, 3))),
            "mesh": mesh_name,
        })
    vertices, triangles = _all_faces(faces, uv.triangles)
    write_png(out_dir / f"{photo.stem}_depth.png", depth_image(vertices, triangles, *photo.image.shape[:2]))
    write_png(out_dir / f"{photo.stem}_vis.png", overlay(photo.image, faces, vertices, triangles))
    summary = {
        "image": str(photo.path),
        "width": photo.image.shape[1],
        "height": height,
        "coordinates": "image pixels: x right, y down, z towards the viewer (relative); meshes y-up: "
                       "(x, height - 1 - y, z)",
        "faces": records,
    }
    json_path = out_dir / f"{photo.stem}.json"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(summary) + "\n")
    return json_path


def _rounded(values, digits):
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def _all_faces(faces, triangles):
    """The faces' meshes as one: vertices (k f, 3) float32, triangles (k t, 3)."""
    vertices = np.concatenate([face.dense for face in faces]).astype(np.float32)
    offsets = np.arange(len(faces))[:, None, None] * len(faces[0].dense)
    return vertices, (triangles[None] + offsets).reshape(-1, 3)


def depth_image(vertices, triangles, height, width) -> np.ndarray:
    """(h, w) uint8: 0 where no face, else z of the nearest surface scaled to 1 (far) .. 255 (near)."""
    depth = rasterize(vertices, triangles, height, width).depth
    covered = np.isfinite(depth)
    out = np.zeros((height, width), np.uint8)
    if covered.any():
        near, far = depth[covered].max(), depth[covered].min()
        out[covered] = 1 + np.rint(254 * (depth[covered] - far) / max(near - far, 1e-6)).astype(np.uint8)
    return out


def overlay(image, faces, vertices, triangles) -> np.ndarray:
    """(h, w, 3) uint8 RGB: the photo with the faces shaded over it (frontal light), landmarks and boxes."""
    height, width = image.shape[:2]
    facing = np.clip(vertex_normals(vertices, triangles)[:, 2:3], 0, 1)
    tint = np.array([150, 190, 255], np.float32) * (0.3 + 0.7 * facing)
    rendered = render_colors(vertices, triangles, np.hstack([tint, np.ones_like(facing)]), height, width)
    alpha = 0.6 * rendered[..., 3:]
    out = np.clip(image * (1 - alpha) + alpha * rendered[..., :3], 0, 255).astype(np.uint8)
    radius = max(1, round(min(height, width) / 200))
    for face in faces:
        x0, y0, x1, y1 = np.rint(face.box).astype(int)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 220, 0), max(1, radius // 2))
        for x, y in np.rint(face.landmarks[:, :2]).astype(int):
            cv2.circle(out, (x, y), radius, (0, 255, 0), -1, cv2.LINE_AA)
    return out


# ---------------------------------------------------------------------------
# Many images


def output_stems(paths) -> list:
    """A distinct output name per image: its file stem, `-2`, `-3`, ... appended when a stem repeats."""
    used, stems = set(), []
    for path in paths:
        stem, number = Path(path).stem, 1
        while (stem if number == 1 else f"{stem}-{number}") in used:
            number += 1
        stems.append(stem if number == 1 else f"{stem}-{number}")
        used.add(stems[-1])
    return stems


def predict_images(paths, out_dir, predictor: Predictor, bbox=None, boxes=None, mesh_format="obj",
                   report=lambda line, failed=False: print(line)) -> dict:
    """Predict every image; returns {path: problem} for the images that failed (the others have their files).

    bbox (4,): the one face box of every image; boxes: {file name: (k, 4)}
    (read_boxes_file); neither: the detector. `report(line, failed)` gets one
    line per image: where its JSON went, or (failed=True) the problem, naming the file.
    """
    if mesh_format not in MESH_WRITERS:
        raise InputError(f"unknown mesh format '{mesh_format}'; expected one of {sorted(MESH_WRITERS)}")
    if bbox is None and boxes is None:
        cascades()  # no detector in this OpenCV: one error for the run, not one per image
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failures, waiting = {}, []

    def run_waiting():
        crops = np.concatenate([photo.crops for photo in waiting])
        posmaps = predict_posmaps(predictor.network, predictor.config, crops, device=predictor.device,
                                  batch_size=predictor.batch_size)
        start = 0
        for photo in waiting:
            maps, start = posmaps[start:start + len(photo.crops)], start + len(photo.crops)
            try:
                faces = faces_in_image(photo, maps, predictor.uv)
                written = write_photo_outputs(photo, faces, predictor.uv, out_dir, mesh_format)
                clipped = f" ({photo.clipped.sum()} box clipped to the image)" if photo.clipped.any() else ""
                report(f"{photo.path}: {len(faces)} face{'s' if len(faces) != 1 else ''}{clipped} -> {written}")
            except (InputError, OSError) as error:
                failures[photo.path] = f"{photo.path}: {error}"
                report(failures[photo.path], failed=True)
        waiting.clear()

    for path, stem in zip(map(Path, paths), output_stems(paths)):
        try:
            waiting.append(prepare_photo(path, stem, *_given_boxes(path, bbox, boxes)))
        except InputError as error:
            failures[path] = str(error)
            report(failures[path], failed=True)
            continue
        if sum(len(photo.crops) for photo in waiting) >= predictor.batch_size:
            run_waiting()
    if waiting:
        run_waiting()
    return failures


def _given_boxes(path, bbox, boxes):
    """(boxes or None for the detector, their source) for one image."""
    if bbox is not None:
        return np.asarray(bbox, dtype=np.float64).reshape(1, 4), "bbox"
    if boxes is not None:
        if path.name not in boxes:
            raise InputError(f"{path}: no entry '{path.name}' in the boxes file")
        return boxes[path.name], "boxes file"
    return None, "detector"
