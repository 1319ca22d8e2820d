"""The 3D morphable model: a model folder in the Basel Face Model layout.

A model folder holds `BFM.mat` (struct `model`: shapeMU, shapePC, shapeEV,
expMU, expPC, expEV, texMU, texPC, texEV, tri, optional tri_mouth, kpt_ind),
`BFM_UV.mat` (variable `UV`, (n, 2) in [0, 1]) and optionally
`face_vertex_ind.npy` (the face vertices without neck and ears, 0-based).
See docs: docs/formats.md section 2. The real BFM and the built-in synthetic model
are read by the same code.
"""

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from prn.rendering.files.matfile import read_mat, write_mat
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError, first_line

MODEL_FILE = "BFM.mat"
UV_FILE = "BFM_UV.mat"
FACE_VERTICES_FILE = "face_vertex_ind.npy"
N_LANDMARKS = 68
FINGERPRINT_BITS = 12      # grid steps per column's power-of-two bound
FINGERPRINT_BLOCK = 16     # columns quantized at a time, to bound the memory


def quantized(values, bits=FINGERPRINT_BITS) -> np.ndarray:
    """values (rows, cols) as int64 multiples of 2**(e - bits), where 2**e bounds each column's magnitude.

    BLAS and numpy's SIMD loops pick their kernels by CPU, so a model computed on
    two machines can differ in the last bit of a few float32 values; on this grid
    (1/4096 of a column's range) such a value lands on the same integer unless it
    sits at a step's edge (at most a 1 in 4096 chance each), while two different
    models still differ. The scaling is by powers of two, so it is exact.
    """
    values = np.asarray(values, np.float64)
    _, exponent = np.frexp(np.abs(values).max(axis=0))
    return np.rint(np.ldexp(values, bits - exponent)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class MorphableModel:
    """A loaded morphable model; vertex arrays are float32, indices 0-based.

    mean (3n,): shapeMU + expMU, interleaved x y z, micrometres.
    basis (3n, K + E): identity basis then expression basis, one matrix so
        that a batch of vertices is one matrix product.
    shape_ev (K,), exp_ev (E,): standard deviations of the coefficients.
    tex_mean (3n,), tex_basis (3n, T), tex_ev (T,): albedo, RGB 0-255.
    triangles (m, 3) int32; mouth_triangles (k, 3) int32, possibly empty.
    landmarks (68,) int32: vertex index of each iBUG landmark.
    uv (n, 2) float64 in [0, 1].
    face_vertices (f,) int32 or None: face without neck and ears.
    """

    path: Path
    mean: np.ndarray
    basis: np.ndarray
    shape_ev: np.ndarray
    exp_ev: np.ndarray
    tex_mean: np.ndarray
    tex_basis: np.ndarray
    tex_ev: np.ndarray
    triangles: np.ndarray
    mouth_triangles: np.ndarray
    landmarks: np.ndarray
    uv: np.ndarray
    face_vertices: np.ndarray | None

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0] // 3

    @property
    def n_shape(self) -> int:
        return self.shape_ev.shape[0]

    @property
    def n_exp(self) -> int:
        return self.exp_ev.shape[0]

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the geometry, hex: triangles and landmarks exactly; mean, bases, standard deviations
        and UV on the grid of `quantized`, so that the same model computed on two CPUs has one fingerprint."""
        digest = hashlib.sha256()
        for array in (self.triangles, self.landmarks):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        columns = (self.mean.reshape(-1, 1), self.basis, self.shape_ev.reshape(1, -1), self.exp_ev.reshape(1, -1),
                   self.uv)
        for array in columns:
            digest.update(str(array.shape).encode())
            for start in range(0, array.shape[1], FINGERPRINT_BLOCK):
                digest.update(quantized(array[:, start:start + FINGERPRINT_BLOCK]).tobytes())
        return digest.hexdigest()

    def vertices(self, shape_params, exp_params) -> np.ndarray:
        """Vertices for a batch of coefficients, one matrix product.

        shape_params (B, k) or (k,), k <= K; exp_params (B, e) or (e,), e <= E;
        coefficients in the units of the bases (as 300W-LP's Shape_Para and
        Exp_Para). Missing trailing coefficients count as 0.
        Returns (B, n, 3) float32 micrometres, or (n, 3) for 1-D inputs.
        """
        shape_params = np.asarray(shape_params, dtype=np.float64)
        exp_params = np.asarray(exp_params, dtype=np.float64)
        single = shape_params.ndim == 1 and exp_params.ndim == 1
        shape_params = np.atleast_2d(shape_params)
        exp_params = np.atleast_2d(exp_params)
        if shape_params.ndim != 2 or exp_params.ndim != 2 or len(shape_params) != len(exp_params):
            raise InputError(f"shape parameters {shape_params.shape} and expression parameters "
                             f"{exp_params.shape} must be (B, k) and (B, e) with the same B")
        k, e = shape_params.shape[1], exp_params.shape[1]
        if k > self.n_shape or e > self.n_exp:
            raise InputError(f"{k} shape / {e} expression parameters exceed the model's "
                             f"{self.n_shape} / {self.n_exp} basis vectors ({self.path})")
        if not (np.isfinite(shape_params).all() and np.isfinite(exp_params).all()):
            raise InputError("shape or expression parameters contain NaN or inf")
        coefficients = np.zeros((len(shape_params), self.n_shape + self.n_exp), np.float32)
        coefficients[:, :k] = shape_params
        coefficients[:, self.n_shape:self.n_shape + e] = exp_params
        flat = coefficients @ self.basis.T
        flat += self.mean
        out = flat.reshape(len(coefficients), self.n_vertices, 3)
        return out[0] if single else out

    def colors(self, tex_params) -> np.ndarray:
        """Albedo for a batch of texture coefficients.

        tex_params (B, t) or (t,), t <= T. Returns (B, n, 3) or (n, 3)
        float32, RGB 0-255 (not clipped).
        """
        tex_params = np.asarray(tex_params, dtype=np.float64)
        single = tex_params.ndim == 1
        tex_params = np.atleast_2d(tex_params)
        t = tex_params.shape[1]
        if tex_params.ndim != 2 or t > self.tex_ev.shape[0]:
            raise InputError(f"texture parameters {tex_params.shape} do not fit the model's "
                             f"{self.tex_ev.shape[0]} texture basis vectors ({self.path})")
        if not np.isfinite(tex_params).all():
            raise InputError("texture parameters contain NaN or inf")
        flat = tex_params.astype(np.float32) @ self.tex_basis[:, :t].T
        flat += self.tex_mean
        out = flat.reshape(len(tex_params), self.n_vertices, 3)
        return out[0] if single else out


class _FieldReader:
    """Checks the fields of one .mat file, naming the file in every error."""

    def __init__(self, path, fields):
        self.path = path
        self.fields = fields

    def fail(self, message):
        raise InputError(f"{self.path}: {message}")

    def array(self, name, dtype=np.float32, optional=False):
        if name not in self.fields:
            if optional:
                return None
            self.fail(f"missing field '{name}'")
        try:
            value = np.asarray(self.fields[name])
            if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
                raise TypeError(value.dtype)
        except (TypeError, ValueError):
            self.fail(f"field '{name}' is not numeric")
        if np.iscomplexobj(value):   # casting would drop the imaginary parts, with only a warning
            self.fail(f"field '{name}' holds complex numbers, expected real ones")
        value = value.astype(dtype)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            self.fail(f"field '{name}' contains NaN or inf")
        return value

    def column(self, name, length=None, dtype=np.float32):
        """A vector stored as (L, 1), (1, L) or (L,)."""
        value = self.array(name, dtype)
        if value.ndim == 2 and 1 in value.shape:
            value = value.reshape(-1)
        if value.ndim != 1 or (length is not None and len(value) != length):
            expected = f"({length}, 1)" if length is not None else "a vector"
            self.fail(f"field '{name}' has shape {np.shape(self.fields[name])}, expected {expected}")
        return value

    def matrix(self, name, rows, cols=None, dtype=np.float32):
        value = self.array(name, dtype)
        if value.ndim != 2 or value.shape[0] != rows or (cols is not None and value.shape[1] != cols):
            expected = f"({rows}, {cols if cols is not None else 'k'})"
            self.fail(f"field '{name}' has shape {value.shape}, expected {expected}")
        return value

    def triangles(self, name, n_vertices, optional=False):
        """Triangles stored 1-based as (3, m) or (m, 3); returns (m, 3) int32 0-based."""
        value = self.array(name, np.float64, optional=optional)
        if value is None:
            return np.zeros((0, 3), np.int32)
        if value.ndim != 2 or 3 not in value.shape:
            self.fail(f"field '{name}' has shape {value.shape}, expected (3, m) or (m, 3)")
        if value.shape[0] == 3:
            value = value.T
        if value.size == 0 and not optional:
            self.fail(f"field '{name}' has no triangles")
        triangles = self.indices(name, value, n_vertices).reshape(-1, 3)
        distinct = (triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2]) \
            & (triangles[:, 0] != triangles[:, 2])
        if len(triangles) and not distinct.any():
            self.fail(f"field '{name}': every triangle repeats a vertex (no surface)")
        return triangles

    def indices(self, name, value, n_vertices):
        """1-based vertex indices -> 0-based int32, range-checked."""
        if value.size and (np.any(value != np.round(value)) or value.min() < 1 or value.max() > n_vertices):
            self.fail(f"field '{name}' holds indices outside 1..{n_vertices} (1-based expected)")
        return value.astype(np.int32) - 1


def load_morphable_model(folder) -> MorphableModel:
    """Load and check a model folder (BFM.mat, BFM_UV.mat, optional face_vertex_ind.npy)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: model folder not found")
    model_path = folder / MODEL_FILE
    contents = read_mat(model_path, "the morphable model")
    if "model" not in contents:
        raise InputError(f"{model_path}: no variable 'model' (expected the BFM struct)")
    struct = contents["model"]
    if struct.dtype.names is None or struct.size != 1:
        raise InputError(f"{model_path}: variable 'model' is not a 1 x 1 struct")
    struct = struct.reshape(-1)[0]
    fields = _FieldReader(model_path, {name: struct[name] for name in struct.dtype.names})

    shape_mu = fields.column("shapeMU")
    if len(shape_mu) == 0 or len(shape_mu) % 3:
        fields.fail(f"field 'shapeMU' has {len(shape_mu)} entries, expected 3 per vertex")
    rows = len(shape_mu)
    n = rows // 3
    exp_mu = fields.column("expMU", rows)
    shape_pc = fields.matrix("shapePC", rows)
    exp_pc = fields.matrix("expPC", rows)
    shape_ev = fields.column("shapeEV", shape_pc.shape[1])
    exp_ev = fields.column("expEV", exp_pc.shape[1])
    tex_mu = fields.column("texMU", rows)
    tex_pc = fields.matrix("texPC", rows)
    tex_ev = fields.column("texEV", tex_pc.shape[1])
    triangles = fields.triangles("tri", n)
    mouth = fields.triangles("tri_mouth", n, optional=True)
    landmarks = fields.indices("kpt_ind", fields.column("kpt_ind", N_LANDMARKS, np.float64), n)
    if len(np.unique(landmarks)) != N_LANDMARKS:   # a face box, a crop and a fit need 68 separate points
        fields.fail(f"field 'kpt_ind' names {len(np.unique(landmarks))} distinct vertices, expected "
                    f"{N_LANDMARKS} (one per landmark)")

    uv_path = folder / UV_FILE
    uv_fields = _FieldReader(uv_path, read_mat(uv_path, "per-vertex UV coordinates"))
    uv = uv_fields.matrix("UV", n, 2, np.float64)
    if uv.min() < 0 or uv.max() > 1:
        uv_fields.fail(f"field 'UV' has values in [{uv.min():g}, {uv.max():g}], expected [0, 1]")
    corners = uv[triangles]
    edges = corners[:, 1:] - corners[:, :1]                                    # (m, 2, 2)
    if not np.any(edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0]):
        uv_fields.fail("field 'UV' lays every triangle on a line or a point: the UV map would hold no face")

    face_vertices = load_face_vertices(folder / FACE_VERTICES_FILE, n, optional=True)
    return MorphableModel(
        path=folder,
        mean=shape_mu + exp_mu,
        basis=np.ascontiguousarray(np.concatenate([shape_pc, exp_pc], axis=1)),
        shape_ev=shape_ev,
        exp_ev=exp_ev,
        tex_mean=tex_mu,
        tex_basis=tex_pc,
        tex_ev=tex_ev,
        triangles=triangles,
        mouth_triangles=mouth,
        landmarks=landmarks,
        uv=uv,
        face_vertices=face_vertices,
    )


def load_face_vertices(path, n_vertices, optional=False):
    """A .npy list of 0-based vertex indices, (f,) int32, sorted and unique."""
    path = Path(path)
    if not path.is_file():
        if optional:
            return None
        raise InputError(f"{path}: face vertex list not found")
    try:
        value = np.load(path, allow_pickle=False)
    except Exception as error:
        raise InputError(f"{path}: not a readable .npy file ({first_line(error)})") from None
    if value.ndim != 1 or value.size == 0 or not np.issubdtype(value.dtype, np.integer):
        raise InputError(f"{path}: expected a non-empty 1-D integer array, got {value.dtype} {value.shape}")
    if value.min() < 0 or value.max() >= n_vertices:
        raise InputError(f"{path}: vertex indices outside 0..{n_vertices - 1}")
    return np.unique(value).astype(np.int32)


def save_morphable_model(folder, fields: dict) -> None:
    """Write a model folder from BFM-layout arrays (each file written atomically).

    fields: the BFM.mat fields (shapeMU ... kpt_ind, 1-based indices), plus
    `UV` (n, 2) and optionally `face_vertex_ind` (f,) 0-based.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    struct = {key: value for key, value in fields.items() if key not in ("UV", "face_vertex_ind")}
    write_mat(folder / MODEL_FILE, {"model": struct})
    write_mat(folder / UV_FILE, {"UV": np.asarray(fields["UV"], np.float64)})
    if "face_vertex_ind" in fields:
        with atomic_path(folder / FACE_VERTICES_FILE) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(fields["face_vertex_ind"], np.int32))
