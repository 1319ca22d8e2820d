"""`prn-predict`'s files for one image: per-face meshes, a depth map, an overlay picture and, last, a JSON summary.

Coordinates in the JSON and the depth map: image pixels, x right, y down, z
towards the viewer (its origin is arbitrary: the crop's). Meshes are written
y-up, in the 300W-LP frame (docs/formats.md section 3): (x, H - 1 - y, z), which
is right-handed, with the triangles wound counter-clockwise seen from the
front, so viewers light the face's outside.

Files per image `<stem>`: `<stem>.json` (image size, how the faces were
read, per face: box, box_source, landmarks68, pose_deg, mesh), `<stem>_<k>.obj` or `.ply` per face
(the dense face at face_ind, colours sampled from the photo;
rendering/files/meshes.py), `<stem>_depth.png` (8-bit: 0 background, 1-255
the rendered faces' z from far to near) and `<stem>_vis.jpg` (the photo, the
faces shaded over it, landmarks and boxes; JPEG quality OVERLAY_QUALITY: a
photo's PNG took ten times as long to encode). One rendering of the faces
gives both pictures. Every file is written under a temporary name and renamed.
"""

import json
from pathlib import Path

import cv2
import numpy as np

from prn.rendering.files.meshes import write_obj, write_ply
from prn.rendering.raster.pictures import blend_rendering, draw_landmarks, render_shaded
from prn.rendering.util.atomic import all_or_nothing, atomic_path, write_jpeg, write_png

MESH_WRITERS = {"obj": write_obj, "ply": write_ply}
OVERLAY_COLOR = (150, 190, 255)    # RGB of the faces shaded over the photo
BOX_COLOR = (255, 220, 0)
OVERLAY_QUALITY = 90               # JPEG quality of <stem>_vis.jpg


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


def write_photo_outputs(out_dir, stem, path, image, faces, box_source, triangles, mesh_format="obj",
                        method=None) -> Path:
    """Write an image's meshes, depth map, overlay and (last) JSON into out_dir; returns the JSON path.

    image (h, w, 3) uint8 RGB read from `path`; faces [Face] (predictor.py);
    triangles (t, 3) of every face's mesh; box_source: where the boxes came
    from ("bbox", "boxes file" or "detector"); method: how the faces were
    read (Predictor.method), recorded as `prediction`. With no face only the
    JSON is written, listing none.
    """
    out_dir = Path(out_dir)
    height, width = image.shape[:2]
    with all_or_nothing(out_dir) as written:   # a failed photo (a full disk) leaves none of its files

        def write(name, writer, *args):
            writer(out_dir / name, *args)
            written.append(out_dir / name)

        records = []
        for number, face in enumerate(faces):
            mesh_name = f"{stem}_{number}.{mesh_format}"
            y_up = face.vertices * (1, -1, 1) + (0, height - 1, 0)
            write(mesh_name, MESH_WRITERS[mesh_format], y_up, triangles, face.colors)
            record = face_record(face)
            records.append({"box": record.pop("box"), "box_source": box_source, **record, "mesh": mesh_name})
        if faces:
            rendered = _render_faces(faces, triangles, height, width)
            write(f"{stem}_depth.png", write_png, depth_from_rendering(rendered))
            write(f"{stem}_vis.jpg", write_jpeg, overlay(image, faces, rendered), OVERLAY_QUALITY)
        summary = {
            "image": str(path),
            "width": width,
            "height": height,
            "coordinates": "image pixels: x right, y down, z towards the viewer (relative); meshes y-up: "
                           "(x, height - 1 - y, z)",
            "prediction": method or {},
            "faces": records,
        }
        write(f"{stem}.json", _write_json, summary)
    return out_dir / f"{stem}.json"


def _write_json(path, value):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value) + "\n")


def face_record(face) -> dict:
    """A face's JSON entry: box, box_clipped, landmarks68 (68 x 3) and pose_deg, in image pixels and degrees."""
    return {
        "box": _rounded(face.box, 2),
        "box_clipped": face.box_clipped,
        "landmarks68": _rounded(face.landmarks, 3),
        "pose_deg": dict(zip(("pitch", "yaw", "roll"), _rounded(face.pose, 3))),
    }


def overlay_picture(image, faces, triangles) -> np.ndarray:
    """(h, w, 3) uint8 RGB: overlay() of the faces [Face] (meshes of triangles (t, 3)); the image itself when none."""
    if not faces:
        return image
    return overlay(image, faces, _render_faces(faces, triangles, *image.shape[:2]))


def _rounded(values, digits):
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def _render_faces(faces, triangles, height, width) -> np.ndarray:
    """pictures.render_shaded (h, w, 5) of all the faces' meshes (triangles (t, 3) each), in OVERLAY_COLOR."""
    vertices = np.concatenate([face.vertices for face in faces]).astype(np.float32)
    offsets = np.arange(len(faces))[:, None, None] * len(faces[0].vertices)
    return render_shaded(vertices, (triangles[None] + offsets).reshape(-1, 3), height, width, OVERLAY_COLOR,
                         ambient=0.3)


def depth_from_rendering(rendered) -> np.ndarray:
    """(h, w) uint8 of a render_shaded (h, w, 5): 0 where no face, else its z scaled to 1 (far) .. 255 (near)."""
    covered = rendered[..., 3] > 0
    depth = rendered[..., 4]
    out = np.zeros(depth.shape, np.uint8)
    if covered.any():
        near, far = depth[covered].max(), depth[covered].min()
        out[covered] = 1 + np.rint(254 * (depth[covered] - far) / max(near - far, 1e-6)).astype(np.uint8)
    return out


def overlay(image, faces, rendered) -> np.ndarray:
    """(h, w, 3) uint8 RGB: the photo with the rendered faces (render_shaded) over it, landmarks and boxes."""
    out = blend_rendering(image, rendered, opacity=0.6)
    radius = max(1, round(min(image.shape[:2]) / 200))
    for face in faces:
        x0, y0, x1, y1 = np.rint(face.box).astype(int)
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX_COLOR, max(1, radius // 2))
        draw_landmarks(out, face.landmarks, size=radius)
    return out
