"""The dataset file layouts of 300W-LP and AFLW2000-3D (docs/formats.md section 4), read and written.

300W-LP: `300W_LP/<SUBSET>/<name>.jpg` + `<name>.mat`, plus
`300W_LP/landmarks/<SUBSET>/<name>_pts.mat`. AFLW2000-3D:
`AFLW2000/imageNNNNN.jpg` + `.mat` with `pt3d_68`. Field shapes and dtypes
are those of the real files.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prn.pipeline.image_size import header_size, too_large
from prn.pipeline.jpeg import decode_jpeg, is_jpeg
from prn.rendering.files.matfile import read_mat, write_mat
from prn.rendering.raster.shading import IDENTITY_COLOR
from prn.rendering.util.atomic import atomic_path, write_jpeg
from prn.rendering.util.errors import InputError, first_line

SUBSETS_300WLP = ("AFW", "HELEN", "IBUG", "LFPW", "AFW_Flip", "HELEN_Flip", "IBUG_Flip", "LFPW_Flip")
LAYOUTS = ("300w-lp", "aflw2000")

# Real dtypes and shapes of the sample .mat fields.
PARAM_FIELDS = {
    "Pose_Para": ((1, 7), np.float32),
    "Shape_Para": ((None, 1), np.float64),
    "Exp_Para": ((None, 1), np.float64),
    "Tex_Para": ((None, 1), np.float64),
    "Illum_Para": ((1, 10), np.float64),
    "Color_Para": ((1, 7), np.float32),
}


class SampleError(InputError):
    """A sample that cannot be used; the message names the file and the problem.

    Stages catch InputError per sample (this, and unreadable files from
    `read_mat`) and list the sample in their rejects.
    """


def shown_name(name) -> str:
    """A file name as text that any terminal and JSON take: bytes that are not UTF-8 as \\xNN."""
    return str(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_name(folder, name):
    """SampleError when a sample's file name is not UTF-8: shards, manifests and reports store names as text."""
    try:
        str(name).encode("utf-8")
    except UnicodeEncodeError:
        raise SampleError(f"{Path(folder) / shown_name(name)}: the file name is not valid UTF-8; rename it") from None


@dataclass
class SampleParams:
    """The fitted (or drawn) parameters of one face, 1-D float64 arrays."""

    pose: np.ndarray          # (7,) pitch, yaw, roll (rad), tx, ty, tz, s
    shape: np.ndarray         # (K,)
    exp: np.ndarray           # (E,)
    tex: np.ndarray | None = None
    illum: np.ndarray | None = None
    color: np.ndarray | None = None


def sample_fields(params: SampleParams, pt2d, roi) -> dict:
    """The .mat fields of a 300W-LP sample, with the real shapes and dtypes.

    pt2d (2, P) image coordinates; roi (4,) x0, y0, x1, y1.
    """
    return {
        "Pose_Para": np.asarray(params.pose, np.float32).reshape(1, 7),
        "Shape_Para": np.asarray(params.shape, np.float64).reshape(-1, 1),
        "Exp_Para": np.asarray(params.exp, np.float64).reshape(-1, 1),
        "Tex_Para": np.asarray(params.tex if params.tex is not None else np.zeros(199), np.float64).reshape(-1, 1),
        "Illum_Para": np.asarray(params.illum if params.illum is not None else np.zeros(10), np.float64).reshape(1, 10),
        "Color_Para": np.asarray(params.color if params.color is not None else IDENTITY_COLOR,
                                 np.float32).reshape(1, 7),
        "pt2d": np.asarray(pt2d, np.float64),
        "roi": np.clip(np.round(np.asarray(roi, np.float64)), -32768, 32767).astype(np.int16).reshape(1, 4),
    }


def roi_box(points_xy):
    """A square face box around landmarks (x0, y0, x1, y1), about 3x the face as in 300W-LP's roi."""
    low, high = points_xy.min(0), points_xy.max(0)
    center = (low + high) / 2
    half = 1.5 * ((high - low).sum() / 2)
    return np.concatenate([center - half, center + half])


def read_image(path):
    """RGB uint8 (h, w, 3), upright by its EXIF orientation; SampleError naming the file when missing or unreadable.

    JPEG files are decoded strictly (prn.pipeline.jpeg): one that libjpeg
    decodes only with a warning (garbage in the data, a premature end) is
    corrupt. Other formats (PNG) go through OpenCV. A file whose header
    claims more than image_size.MAX_IMAGE_PIXELS is refused undecoded.
    """
    path = Path(path)
    if not path.is_file():
        raise SampleError(f"{path}: image missing")
    data = path.read_bytes()
    size = header_size(data)
    refused = too_large(*size) if size is not None else None
    if refused is not None:
        raise SampleError(f"{path}: not read: {refused}")
    if is_jpeg(data):
        try:
            return decode_jpeg(data)
        except ValueError as error:
            raise SampleError(f"{path}: not a readable image (corrupt JPEG: {first_line(error)})") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise SampleError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _field(path, fields, name, shape, dtype=np.float64):
    if name not in fields:
        raise SampleError(f"{path}: missing field '{name}'")
    value = np.asarray(fields[name])
    if not np.issubdtype(value.dtype, np.number):
        raise SampleError(f"{path}: field '{name}' is not numeric")
    if np.iscomplexobj(value):   # casting would drop the imaginary parts, with only a warning
        raise SampleError(f"{path}: field '{name}' holds complex numbers, expected real ones")
    value = value.astype(dtype)
    if len(shape) != value.ndim or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        expected = " x ".join("k" if s is None else str(s) for s in shape)
        raise SampleError(f"{path}: field '{name}' has shape {value.shape}, expected {expected}")
    if not np.isfinite(value).all():
        raise SampleError(f"{path}: field '{name}' contains NaN or inf")
    return value


def read_params(path, fields=None) -> SampleParams:
    """The parameters of a 300W-LP / AFLW2000-3D sample .mat (texture and light optional)."""
    fields = read_mat(path) if fields is None else fields
    pose = _field(path, fields, "Pose_Para", (1, 7)).ravel()
    if not pose[6] > 0:
        raise SampleError(f"{path}: field 'Pose_Para' has a non-positive scale {pose[6]:g}")
    optional = {}
    for name, key in (("Tex_Para", "tex"), ("Illum_Para", "illum"), ("Color_Para", "color")):
        if name in fields:
            optional[key] = _field(path, fields, name, PARAM_FIELDS[name][0]).ravel()
    return SampleParams(
        pose=pose,
        shape=_field(path, fields, "Shape_Para", (None, 1)).ravel(),
        exp=_field(path, fields, "Exp_Para", (None, 1)).ravel(),
        **optional,
    )


def read_landmarks_2d(path, fields=None, field="pt2d"):
    """(68, 2) float64 landmarks from a .mat's pt2d (2 x 68)."""
    fields = read_mat(path) if fields is None else fields
    return _field(path, fields, field, (2, 68)).T


def read_pts(path):
    """(68, 2) float64 landmarks from an iBUG .pts file (version, n_points: 68, { x y ... })."""
    path = Path(path)
    if not path.is_file():
        raise SampleError(f"{path}: landmark file missing")
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise SampleError(f"{path}: not a text .pts file") from None
    header = {}
    body_start = None
    for index, line in enumerate(lines):
        if line == "{":
            body_start = index + 1
            break
        key, _, value = line.partition(":")
        header[key.strip()] = value.strip()
    if body_start is None or "}" not in lines[body_start:]:
        raise SampleError(f"{path}: not an iBUG .pts file (no {{ ... }} block)")
    body = lines[body_start:lines.index("}", body_start)]
    declared = header.get("n_points")
    if declared is None or not declared.isdigit():
        raise SampleError(f"{path}: missing or invalid 'n_points' header")
    if int(declared) != 68 or len(body) != 68:
        raise SampleError(f"{path}: {len(body)} points (n_points: {declared}), expected 68")
    try:
        points = np.array([[float(v) for v in line.split()] for line in body])
    except ValueError:
        raise SampleError(f"{path}: a point is not two numbers") from None
    if points.shape != (68, 2):
        raise SampleError(f"{path}: each point must be two numbers 'x y'")
    if not np.isfinite(points).all():
        raise SampleError(f"{path}: points contain NaN or inf")
    return points


def write_pts(path, points):
    """Write (68, 2) points as an iBUG .pts file, atomically."""
    text = "version: 1\nn_points: 68\n{\n" + "".join(f"{x:.3f} {y:.3f}\n" for x, y in points) + "}\n"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_sample(image_path, image_rgb, fields, extra_mats=(), quality=90):
    """Write one sample: the JPEG, any extra .mat files, then its .mat last.

    The sample's own .mat is the marker of a finished sample (resume looks
    for it), so it is renamed into place after everything else.
    """
    image_path = Path(image_path)
    write_jpeg(image_path, image_rgb, quality)
    for path, variables in extra_mats:
        write_mat(path, variables)
    write_mat(image_path.with_suffix(".mat"), fields)
