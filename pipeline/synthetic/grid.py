"""The vertex grid of the synthetic face: topology, UV unwrap and the mouth cut.

The grid is also the UV unwrap. Column U is the half-plane at angle theta
around the head's axis (subject's right ear U = 0, left ear U = 1); V is the
arc length of the midline profile, the neck and under-chin counted at
NECK_ROW_DENSITY. Two rows meet at the mouth line, where the grid is cut into
lips. Lengths in mm.
"""

import numpy as np

from prn.pipeline.synthetic.features import MOUTH_Y, SLIT_HALF_WIDTH
from prn.pipeline.synthetic.head import NECK_BOTTOM_Y, PIVOT_Y, RISING_PART, cast, rays, surface
from prn.pipeline.synthetic.shapes import smoothstep

GRID_ASPECT = 1.15          # columns per row of the vertex grid
TOP_Y = 89.0                # top of the forehead on the midline
THETA_MAX = np.radians(104.0)
INNER_LIP_GAP = 0.4         # neutral gap between the inner lip rows
U_STRETCH = 0.3            # U = 0.5 + ((1 + a) s - a s^3) / 2, s = theta / THETA_MAX
NECK_ROW_DENSITY = 0.45     # rows per mm on the neck relative to the face


def _grid_size(n_vertices):
    """(columns, rows) of the vertex grid; columns odd so that one lies on the midline."""
    rows = max(16, int(round(np.sqrt(n_vertices / GRID_ASPECT))))
    columns = max(17, int(round(n_vertices / rows)))
    return columns + 1 - columns % 2, rows


def _midline_map(samples=4001):
    """Samples (t, V) of the map from ray parameter to V, and the midline length (mm).

    V is the share of the midline arc length, the neck and under-chin counted at NECK_ROW_DENSITY.
    """
    t = np.linspace(0.0, 1.0, samples)
    _, _, points = surface(np.zeros(samples), t)
    t = np.linspace(0.0, np.interp(TOP_Y, points[:, 1], t), samples)
    _, _, points = surface(np.zeros(samples), t)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    neck_share = 1.0 - (1.0 - NECK_ROW_DENSITY) * smoothstep(-86.0, -100.0, points[1:, 1])
    arc = np.r_[0.0, np.cumsum(steps * neck_share)]
    return t, arc / arc[-1], arc[-1]


def _pinch(v, centre, half_row, keep_at_rows):
    """Monotone squeeze of V towards `centre`: rows at centre +- half_row end keep_at_rows as far."""
    offset = v - centre
    keep = keep_at_rows + (1.0 - keep_at_rows) * smoothstep(half_row, 3.0 * half_row + 0.01, np.abs(offset))
    return centre + offset * keep


def _angle_of_u(u):
    """theta from U: monotone, odd about U = 0.5, denser towards the face centre."""
    s = 2.0 * u - 1.0
    return THETA_MAX * np.sign(s) * _inverse_cubic_stretch(np.abs(s))


def _inverse_cubic_stretch(g):
    """The s in [0, 1] with (1 + a) s - a s^3 = g (a = U_STRETCH), by Newton steps."""
    s = g.copy()
    for _ in range(30):
        s -= ((1.0 + U_STRETCH) * s - U_STRETCH * s ** 3 - g) / (1.0 + U_STRETCH - 3.0 * U_STRETCH * s ** 2)
    return np.clip(s, 0.0, 1.0)


def _grid_coordinates(columns, rows):
    """U (columns,), V (rows,) and theta (columns,): U mirror-exact about 0.5, theta = 0 on the midline."""
    mid = (columns - 1) // 2
    u = np.arange(columns) / (columns - 1)
    u[mid + 1:] = 1.0 - u[:mid][::-1]
    theta = _angle_of_u(u)
    theta[mid] = 0.0
    return u, np.arange(rows) / (rows - 1), theta


def _align_mouth_rows(v, v_mouth):
    """Row j of the lower inner lip (j + 1: upper) and V shifted so that these rows straddle v_mouth."""
    rows = len(v)
    lower_lip_row = int(np.clip(np.floor(v_mouth * (rows - 1) - 0.5), 1, rows - 3))
    row_mid = (lower_lip_row + 0.5) / (rows - 1)
    return lower_lip_row, v + (v_mouth - row_mid) * np.sin(np.pi * v) / np.sin(np.pi * row_mid)


def _slit_columns(theta, t_mouth):
    """Columns cut open along the mouth line (at least three) and each column's |x| there (mm)."""
    origin, direction = rays(theta, np.full(len(theta), t_mouth))
    mouth_x = np.abs(origin[:, 0] + cast(origin, direction) * direction[:, 0])
    slit = mouth_x <= SLIT_HALF_WIDTH
    mid = (len(theta) - 1) // 2
    slit[mid - 1:mid + 2] = True
    return slit, mouth_x


def _pinched_rows(aligned, v_mouth, slit, mouth_x, arc_length):
    """V of every vertex (rows, columns): the two inner lip rows squeezed together across the slit."""
    half_row = 0.5 / (len(aligned) - 1)
    edge = mouth_x[slit].max()
    squeeze = np.where(slit, 1.0, smoothstep(edge + 12.0, edge, mouth_x))
    keep = min(1.0, INNER_LIP_GAP / (2.0 * half_row * arc_length))
    pinched = _pinch(aligned[:, None], v_mouth, half_row, keep)
    return aligned[:, None] + squeeze * (pinched - aligned[:, None])


def _mouth_split(aligned, v_mouth, slit, mouth_x):
    """(rows, columns): 1 on the lower lip and jaw, 0 on the upper lip, smooth beyond the mouth corners."""
    half_row = 0.5 / (len(aligned) - 1)
    spread = half_row + 0.006 * np.clip(mouth_x - mouth_x[slit].max(), 0.0, None)
    return smoothstep(-1.0, 1.0, (v_mouth - aligned[:, None]) / spread)


class Layout:
    """The mean face on its grid (mm): base surface, ray directions, final points, UV and mouth cut.

    Vertex index = row * columns + column; rows go up from the neck, columns from the right ear.
    """

    def __init__(self, n_vertices):
        self.columns, self.rows = _grid_size(n_vertices)
        self.mid = (self.columns - 1) // 2
        t_samples, v_samples, arc_length = _midline_map()
        u, v, theta = _grid_coordinates(self.columns, self.rows)
        t_mouth = RISING_PART * (MOUTH_Y - NECK_BOTTOM_Y) / (PIVOT_Y - NECK_BOTTOM_Y)
        v_mouth = np.interp(t_mouth, t_samples, v_samples)
        self.lower_lip_row, aligned = _align_mouth_rows(v, v_mouth)
        self.slit, mouth_x = _slit_columns(theta, t_mouth)
        pinched = _pinched_rows(aligned, v_mouth, self.slit, mouth_x, arc_length)
        self.below = _mouth_split(aligned, v_mouth, self.slit, mouth_x).reshape(-1)

        half = slice(0, self.mid + 1)
        t = np.interp(pinched[:, half], v_samples, t_samples)
        base, direction, final = surface(np.broadcast_to(theta[half], t.shape), t)
        self.base = _mirror_columns(base, self.columns).reshape(-1, 3)
        self.direction = _mirror_columns(direction, self.columns).reshape(-1, 3)
        self.mean = _mirror_columns(final, self.columns).reshape(-1, 3)
        self.theta = np.broadcast_to(theta, (self.rows, self.columns)).reshape(-1)
        grid_u, grid_v = np.meshgrid(u, v)
        self.uv = np.stack([grid_u.reshape(-1), grid_v.reshape(-1)], axis=1)
        self.triangles, self.mouth_triangles = _grid_triangles(self.columns, self.rows, self.lower_lip_row,
                                                               self.slit)

    @property
    def n(self):
        return self.rows * self.columns

    def index(self, row, column):
        return row * self.columns + column

    def mirror(self, index):
        row, column = divmod(index, self.columns)
        return self.index(row, self.columns - 1 - column)


def _mirror_columns(left, columns):
    """Complete (rows, mid + 1, 3) arrays of columns 0..mid (x <= 0) with their mirror images in x."""
    right = left[:, :-1][:, ::-1].copy()
    right[..., 0] *= -1.0
    return np.concatenate([left, right], axis=1)[:, :columns]


def _grid_triangles(columns, rows, lower_lip_row, slit):
    """Triangles (m, 3) and mouth triangles (k, 3), 0-based, clockwise in UV (V up).

    That is the BFM's winding: (b - a) x (c - a) points into the head in model
    space and towards the viewer in image coordinates (y down).
    """
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(columns - 1), indexing="ij")
    a = r * columns + c
    b, d = a + 1, a + columns
    e = d + 1
    left = (c < (columns - 1) // 2)[..., None]
    first = np.where(left, np.stack([a, b, e], -1), np.stack([a, b, d], -1))
    second = np.where(left, np.stack([a, e, d], -1), np.stack([b, e, d], -1))
    quads = np.stack([first, second], axis=2)
    in_mouth = (r == lower_lip_row) & slit[c] & slit[c + 1]
    quads = quads[..., [0, 2, 1]]
    return quads[~in_mouth].reshape(-1, 3), quads[in_mouth].reshape(-1, 3)
