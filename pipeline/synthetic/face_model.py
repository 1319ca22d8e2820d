"""A procedural, deterministic 3D morphable face model in the Basel Face Model layout.

`make_synthetic_model` returns the arrays of the BFM (docs: docs/formats.md sections
2 and 5) for a synthetic face, so the toolkit runs without the real BFM.
Units: micrometres; x to the subject's left, y up, z towards the viewer;
albedo RGB on a 0-255 scale.

Construction, one module each: `head` (an implicit head cut by rays plus the
relief of the facial `features`), `grid` (the vertex grid, which is also the
UV unwrap, cut open at the mouth), `landmarks` (the face region and the 68
landmarks), `bases` (identity and expression displacement fields: named
components first, then smooth random fields drawn with
numpy.random.Generator(PCG64(seed))) and `albedo` (the mean colour and its
basis).
"""

import numpy as np

from prn.pipeline.synthetic.albedo import albedo_basis, mean_albedo
from prn.pipeline.synthetic.bases import MICROMETRES_PER_MM, expression_basis, identity_basis
from prn.pipeline.synthetic.grid import Layout
from prn.pipeline.synthetic.landmarks import face_mask, landmark_vertices, landmarks_on_pixel_centres


def _column(values):
    return np.asarray(values, np.float64).reshape(-1, 1).astype(np.float32)


def make_synthetic_model(n_vertices: int = 50_000, seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic morphable face model in the BFM layout (docs/formats.md section 2).

    n_vertices: approximate vertex count n (at least 400); seed: picks the
    random components of the bases and the skin mottling (the mean shape,
    landmarks and named components do not depend on it).
    Returns shapeMU, expMU, texMU (3n, 1), shapePC (3n, 199), expPC (3n, 29),
    texPC (3n, 199), shapeEV (199, 1), expEV (29, 1), texEV (199, 1) float32
    (micrometres, coefficient units, RGB 0-255); tri (3, m), tri_mouth (3, k)
    and kpt_ind (1, 68) int32 1-based; UV (n, 2) float64; face_vertex_ind (f,)
    int32 0-based. shapePC and texPC are orthonormal; expPC holds um per unit
    (mouth open first: about 8 mm per unit); expMU opens the mouth slightly.
    """
    if n_vertices < 400:
        raise ValueError(f"n_vertices must be at least 400, got {n_vertices}")
    rng = np.random.Generator(np.random.PCG64(seed))
    layout = Layout(n_vertices)
    face = face_mask(layout)
    landmarks = landmark_vertices(layout, face)
    shape_pc, shape_ev = identity_basis(layout, rng)
    exp_pc, exp_ev = expression_basis(layout, rng)
    tex_mu = mean_albedo(layout, rng)
    tex_pc, tex_ev = albedo_basis(layout, rng)
    neutral_gap = 0.3 * exp_pc[:, 0]
    return {
        "shapeMU": _column(layout.mean * MICROMETRES_PER_MM),
        "shapePC": shape_pc.astype(np.float32),
        "shapeEV": _column(shape_ev),
        "expMU": _column(neutral_gap),
        "expPC": exp_pc.astype(np.float32),
        "expEV": _column(exp_ev),
        "texMU": _column(tex_mu),
        "texPC": tex_pc.astype(np.float32),
        "texEV": _column(tex_ev),
        "tri": (layout.triangles.T + 1).astype(np.int32),
        "tri_mouth": (layout.mouth_triangles.T + 1).astype(np.int32),
        "kpt_ind": (landmarks + 1).astype(np.int32).reshape(1, 68),
        "UV": landmarks_on_pixel_centres(layout.uv, landmarks),
        "face_vertex_ind": np.flatnonzero(face).astype(np.int32),
    }
