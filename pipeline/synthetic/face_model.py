"""A procedural, deterministic 3D morphable face model in the Basel Face Model layout.

`make_synthetic_model` returns the arrays of the BFM (docs: formats.md sections
2 and 5) for a synthetic face, so the toolkit runs without the real BFM.
Units: micrometres; x to the subject's left, y up, z towards the viewer;
albedo RGB on a 0-255 scale.

Construction. Vertices form a (U, V) grid, which is also the UV unwrap. Column
U is the half-plane at angle theta around a vertical axis (subject's right ear
U = 0, left ear U = 1); in it each vertex lies on a ray: horizontal rays from
an origin rising up the axis below the nose, rays turning upwards from a fixed
origin above it. Rays of one half-plane never cross, so the surface is
star-shaped and cannot intersect itself. A ray's length is the distance to an
implicit head (skull, jaw cut, neck) plus a relief of facial features (nose,
eyes, lips, brows, cheeks, chin, ears). V is the arc length of the midline
profile. Two rows meet at the mouth line, where the grid is cut into lips.
Bases are displacement fields: named components first, then smooth random
fields drawn with numpy.random.Generator(PCG64(seed)).
"""

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.linalg import solve_triangular

MICROMETRES_PER_MM = 1000.0
N_SHAPE, N_EXP, N_TEX = 199, 29, 199
GRID_ASPECT = 1.15          # columns per row of the vertex grid

# Ray family (mm): the axis is vertical through (x=0, z=AXIS_Z).
AXIS_Z = 10.0
NECK_BOTTOM_Y = -122.0
PIVOT_Y = -5.0              # origin of the turning rays (just above the nose tip)
TOP_Y = 89.0                # top of the forehead on the midline
THETA_MAX = np.radians(104.0)
PHI_LIMIT = np.radians(80.0)
RISING_PART = 0.5           # share of the ray parameter t spent on horizontal rays

# Skull section per height y (mm): half-width, front and back extent from z = 0.
_SKULL_Y = [-140, -110, -90, -75, -60, -40, -20, 0, 26, 45, 65, 89, 115, 140, 165]
_SKULL_HALF_WIDTH = [50, 51, 52, 55, 58, 64, 70, 74, 76, 76, 74, 70, 60, 40, 10]
_SKULL_FRONT = [90, 95, 100, 106, 107, 108, 108, 104, 104, 108, 108, 101, 85, 55, 15]
_SKULL_BACK = [95, 95, 95, 95, 95, 95, 95, 95, 95, 95, 95, 92, 80, 55, 15]
SKULL_EXPONENT = 2.4

# Neck: elliptic cylinder per height, leaning forward.
_NECK_Y = [-140, -120, -100, -80, -60, -40, -20, 0, 20, 40]
_NECK_HALF_WIDTH = [50, 52, 55, 58, 61, 65, 70, 74, 74, 70]
_NECK_DEPTH = [46, 46, 47, 50, 53, 56, 58, 60, 60, 60]

# Facial layout (mm), symmetric in x; see the landmark targets below.
EYE_X, EYE_Y, EYE_HALF_WIDTH = 31.5, 27.5, 12.0
UPPER_LID_RISE, LOWER_LID_DROP = 4.4, 2.8
MOUTH_Y, MOUTH_HALF_WIDTH, SLIT_HALF_WIDTH = -39.8, 25.8, 23.0
INNER_LIP_GAP = 0.4         # neutral gap between the inner lip rows
U_STRETCH = 0.3            # U = 0.5 + ((1 + a) s - a s^3) / 2, s = theta / THETA_MAX
NECK_ROW_DENSITY = 0.45     # rows per mm on the neck relative to the face
FACE_THETA_DEG = 88.0       # the face region ends here, in front of the ears
UV_MAP_SIZE = 256           # the PRN position map side; landmarks sit on its pixel centres


def _smoothstep(edge0, edge1, x):
    s = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _gauss(x, y, cx, cy, rx, ry):
    return np.exp(-((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2)


def _bump(x, y, cx, cy, rx, ry):
    """Compact C2 bump: 1 at the centre, 0 outside the ellipse."""
    d2 = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    return np.clip(1.0 - d2, 0.0, None) ** 3


def _smin(a, b, k):
    """Smooth minimum of two signed distances with blend radius k."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1.0 - h) + a * h - k * h * (1.0 - h)


def _smax(a, b, k):
    return -_smin(-a, -b, k)


def _softplus(x, width):
    return width * np.logaddexp(0.0, x / width)


def _profile(ys, values, y):
    return PchipInterpolator(ys, values)(np.clip(y, ys[0], ys[-1]))


# ---------------------------------------------------------------------------
# Implicit head


def _skull_distance(x, y, z):
    half_width = _profile(_SKULL_Y, _SKULL_HALF_WIDTH, y)
    depth = np.where(z >= 0.0, _profile(_SKULL_Y, _SKULL_FRONT, y), _profile(_SKULL_Y, _SKULL_BACK, y))
    level = np.abs(x / half_width) ** SKULL_EXPONENT + np.abs(z / depth) ** SKULL_EXPONENT
    return (level ** (1.0 / SKULL_EXPONENT) - 1.0) * half_width


def _jaw_cut_height(x, z):
    """Height of the lower border of the jaw: chin, jaw angle, then up the ramus."""
    floor = -88.0 - 0.15 * _softplus(95.0 - z, 4.0) + 0.0095 * x ** 2
    ramus = 0.25 * _softplus(32.0 - z, 5.0) ** 2
    return _smin(floor + ramus, 8.0, 12.0)


def _neck_distance(x, y, z):
    half_width = _profile(_NECK_Y, _NECK_HALF_WIDTH, y)
    depth = _profile(_NECK_Y, _NECK_DEPTH, y)
    centre_z = 12.0 + 0.3 * _smin(y + 95.0, 27.0, 10.0)
    radial = np.sqrt((x / half_width) ** 2 + ((z - centre_z) / depth) ** 2)
    return _smax((radial - 1.0) * depth, y - 35.0, 10.0)


def _head_distance(p):
    """Approximate signed distance (mm) to the head without facial relief; < 0 inside."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    face = _smax(_skull_distance(x, y, z), 0.7 * (_jaw_cut_height(x, z) - y), 7.0)
    return _smin(face, _neck_distance(x, y, z), 9.0)


# ---------------------------------------------------------------------------
# Rays


def _rays(theta, t):
    """Origins and unit directions (..., 3) of the rays at angle theta, parameter t in [0, 1]."""
    rising = t < RISING_PART
    origin_y = np.where(rising, NECK_BOTTOM_Y + (PIVOT_Y - NECK_BOTTOM_Y) * t / RISING_PART, PIVOT_Y)
    phi = np.where(rising, 0.0, PHI_LIMIT * (t - RISING_PART) / (1.0 - RISING_PART))
    origin = np.stack(np.broadcast_arrays(0.0, origin_y, AXIS_Z), axis=-1)
    direction = np.stack([np.cos(phi) * np.sin(theta), np.sin(phi) + 0.0 * theta,
                          np.cos(phi) * np.cos(theta)], axis=-1)
    return origin, direction


def _cast(origin, direction, step=1.5, start=15.0, stop=260.0, refinements=30):
    """Distance along each ray to the first exit from the head (mm)."""
    inside = np.full(origin.shape[:-1], start)
    found = np.zeros(origin.shape[:-1], bool)
    outside = np.full(origin.shape[:-1], stop)
    for r in np.arange(start + step, stop, step):
        exits = ~found & (_head_distance(origin + r * direction) > 0.0)
        outside[exits] = r
        found |= exits
        if found.all():
            break
        inside[~found] = r
    for _ in range(refinements):
        middle = 0.5 * (inside + outside)
        out = _head_distance(origin + middle[..., None] * direction) > 0.0
        outside = np.where(out, middle, outside)
        inside = np.where(out, inside, middle)
    return 0.5 * (inside + outside)


# ---------------------------------------------------------------------------
# Facial relief: offsets along the rays (mm) as functions of the base surface


def _front(theta):
    return _smoothstep(0.2, 0.5, np.cos(theta))


def _nose_relief(x, y):
    height = _profile([-27, -23, -19.5, -16, -12, -9, -5, 2, 14, 26, 33],
                      [0, 2.5, 6.5, 12, 19.5, 25, 25.5, 23.5, 15, 6.5, 0], y)
    half_width = _profile([-22, -17, -12, -5, 5, 15, 26, 35], [14, 15.5, 15, 12.5, 10.5, 9, 8, 9], y)
    ridge = height * np.clip(1.0 - (x / half_width) ** 2, 0.0, None) ** 2
    tip = 3.0 * _gauss(x, y, 0.0, -7.5, 7.0, 6.0)
    wings = 6.5 * (_bump(x, y, 14.0, -13.5, 8.0, 7.0) + _bump(x, y, -14.0, -13.5, 8.0, 7.0))
    nostrils = -1.5 * (_gauss(x, y, 6.5, -17.0, 3.5, 2.0) + _gauss(x, y, -6.5, -17.0, 3.5, 2.0))
    return np.maximum(ridge + tip, wings) + nostrils


def _eye_frame(x, y):
    """Per-eye coordinates: ex in [-1, 1] from the inner to the outer corner, lid heights."""
    ex = (np.abs(x) - EYE_X) / EYE_HALF_WIDTH
    span = np.clip(1.0 - ex ** 2, 0.0, None)
    upper = EYE_Y + UPPER_LID_RISE * span ** 0.7
    lower = EYE_Y - LOWER_LID_DROP * span ** 0.8
    return ex, upper, lower


def _eye_relief(x, y):
    ax = np.abs(x)
    ex, upper, lower = _eye_frame(x, y)
    socket = -10.0 * _bump(ax, y, EYE_X - 1.0, EYE_Y + 2.0, 24.0, 17.0)
    corners = -4.0 * _gauss(ax, y, EYE_X - EYE_HALF_WIDTH, EYE_Y, 5.0, 5.0) \
        - 3.0 * _gauss(ax, y, EYE_X + EYE_HALF_WIDTH, EYE_Y, 6.0, 6.0)
    eyeball = 4.5 * _bump(ax, y, EYE_X, EYE_Y + 0.5, 17.0, 13.0) ** 0.5
    outside = -np.minimum(np.minimum(upper - y, y - lower), (1.0 - np.abs(ex)) * 6.0)
    lid_width = np.where(y > EYE_Y, 5.0, 3.5)
    lids = 1.6 * _smoothstep(-0.4, 0.4, outside) * np.exp(-(np.clip(outside, 0.0, None) / lid_width) ** 2)
    crease_y = upper + 4.5 * np.clip(1.0 - ex ** 2, 0.0, None) ** 0.5 + 1.5
    crease = -1.2 * np.exp(-((y - crease_y) / 1.6) ** 2) * _smoothstep(1.2, 0.6, np.abs(ex))
    return socket + corners + eyeball + lids + crease


def _brow_line(x):
    """Height of the eyebrow (mm) at |x|."""
    ax = np.abs(x)
    curvature = np.where(ax < 38.0, 0.0105, 0.022)
    return 48.8 - curvature * (ax - 38.0) ** 2


def _brow_relief(x, y):
    ridge = 3.0 * np.exp(-((y - _brow_line(x) + 2.0) / 6.0) ** 2) * _smoothstep(8.0, 16.0, np.abs(x)) \
        * _smoothstep(66.0, 56.0, np.abs(x))
    glabella = 1.8 * _gauss(x, y, 0.0, 40.0, 14.0, 9.0)
    temples = -2.5 * (_gauss(x, y, 66.0, 42.0, 12.0, 20.0) + _gauss(x, y, -66.0, 42.0, 12.0, 20.0))
    return ridge + glabella + temples


def _lip_borders(x):
    """Heights (mm) of the upper and lower vermilion borders above/below the mouth line."""
    u2 = np.clip((x / MOUTH_HALF_WIDTH) ** 2, 0.0, 1.0)
    upper = 8.6 * (1.0 - u2) - 1.2 * np.exp(-(x / 3.3) ** 2)
    lower = 8.0 * (1.0 - u2) ** 0.8
    return upper, lower


def _mouth_relief(x, y):
    upper, lower = _lip_borders(x)
    dy = y - MOUTH_Y
    mound = 6.5 * _bump(x, y, 0.0, -41.0, 36.0, 27.0) + 3.0 * _bump(x, y, 0.0, -31.0, 24.0, 9.0)
    s_up = np.clip(dy / np.maximum(upper, 0.5), 0.0, 1.0)
    s_low = np.clip(-dy / np.maximum(lower, 0.5), 0.0, 1.0)
    taper = _smoothstep(MOUTH_HALF_WIDTH + 2.0, MOUTH_HALF_WIDTH - 8.0, np.abs(x))
    vermilion = taper * (4.5 * np.sin(np.pi * s_up) + 3.0 * np.sin(np.pi * s_low))
    groove = -2.2 * np.exp(-(dy / 1.3) ** 2) * _smoothstep(MOUTH_HALF_WIDTH + 3.0, MOUTH_HALF_WIDTH - 4.0,
                                                            np.abs(x))
    corners = -1.5 * (_gauss(x, y, MOUTH_HALF_WIDTH + 1.0, MOUTH_Y, 3.5, 3.0)
                      + _gauss(x, y, -MOUTH_HALF_WIDTH - 1.0, MOUTH_Y, 3.5, 3.0))
    philtrum = 0.7 * (_gauss(x, y, 4.5, -26.0, 1.8, 5.0) + _gauss(x, y, -4.5, -26.0, 1.8, 5.0))
    sulcus = -2.0 * np.exp(-((y + 57.0) / 4.0) ** 2) * _smoothstep(24.0, 10.0, np.abs(x))
    chin = 4.5 * _bump(x, y, 0.0, -71.0, 22.0, 15.0)
    return mound + vermilion + groove + corners + philtrum + sulcus + chin


def _cheek_relief(x, y):
    ax = np.abs(x)
    bones = 3.0 * _gauss(ax, y, 50.0, 6.0, 17.0, 13.0)
    # nasolabial fold: a groove from the nose wing to beside the mouth corner
    along = np.clip((y + 12.0) / -34.0, 0.0, 1.0)
    fold_x = 18.0 + 12.0 * along
    fold = -1.3 * np.exp(-((ax - fold_x) / 2.5) ** 2) * _smoothstep(-8.0, -14.0, y) * _smoothstep(-50.0, -44.0, y)
    fullness = 1.5 * _gauss(ax, y, fold_x + 6.0, -28.0, 8.0, 14.0)
    return bones + fold + fullness


def _ear_relief(theta, y, radius):
    """The ear: a plate standing out from the side of the head, with a rim and a hollow."""
    arc = (np.abs(theta) - np.radians(95.0)) * radius
    plate = _bump(arc, y, 0.0, 15.0, 16.0, 31.0) ** 0.35
    backward = _smoothstep(-16.0, 14.0, arc)
    concha = _bump(arc, y, -3.0, 10.0, 8.5, 13.0)
    rim = _bump(arc, y, 0.0, 15.0, 16.0, 31.0) - _bump(arc, y, 0.0, 15.0, 13.0, 27.0)
    return plate * (6.0 + 9.0 * backward) - 5.0 * concha + 2.5 * rim


def _relief(base, theta):
    """Offset (mm) along the ray for base surface points (..., 3)."""
    x, y = base[..., 0], base[..., 1]
    radius = np.hypot(x, base[..., 2] - AXIS_Z)
    face = _nose_relief(x, y) + _eye_relief(x, y) + _brow_relief(x, y) + _mouth_relief(x, y) + _cheek_relief(x, y)
    return _front(theta) * face + _ear_relief(theta, y, radius)


def _surface(theta, t):
    """Base points, ray directions and final points (..., 3), mm."""
    origin, direction = _rays(theta, t)
    radius = _cast(origin, direction)
    base = origin + radius[..., None] * direction
    final = base + _relief(base, theta)[..., None] * direction
    return base, direction, final


# ---------------------------------------------------------------------------
# Grid and mesh


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
    _, _, points = _surface(np.zeros(samples), t)
    t = np.linspace(0.0, np.interp(TOP_Y, points[:, 1], t), samples)
    _, _, points = _surface(np.zeros(samples), t)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    neck_share = 1.0 - (1.0 - NECK_ROW_DENSITY) * _smoothstep(-86.0, -100.0, points[1:, 1])
    arc = np.r_[0.0, np.cumsum(steps * neck_share)]
    return t, arc / arc[-1], arc[-1]


def _pinch(v, centre, half_row, keep_at_rows):
    """Monotone squeeze of V towards `centre`: rows at centre +- half_row end keep_at_rows as far."""
    offset = v - centre
    keep = keep_at_rows + (1.0 - keep_at_rows) * _smoothstep(half_row, 3.0 * half_row + 0.01, np.abs(offset))
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
    origin, direction = _rays(theta, np.full(len(theta), t_mouth))
    mouth_x = np.abs(origin[:, 0] + _cast(origin, direction) * direction[:, 0])
    slit = mouth_x <= SLIT_HALF_WIDTH
    mid = (len(theta) - 1) // 2
    slit[mid - 1:mid + 2] = True
    return slit, mouth_x


def _pinched_rows(aligned, v_mouth, slit, mouth_x, arc_length):
    """V of every vertex (rows, columns): the two inner lip rows squeezed together across the slit."""
    half_row = 0.5 / (len(aligned) - 1)
    edge = mouth_x[slit].max()
    squeeze = np.where(slit, 1.0, _smoothstep(edge + 12.0, edge, mouth_x))
    keep = min(1.0, INNER_LIP_GAP / (2.0 * half_row * arc_length))
    pinched = _pinch(aligned[:, None], v_mouth, half_row, keep)
    return aligned[:, None] + squeeze * (pinched - aligned[:, None])


def _mouth_split(aligned, v_mouth, slit, mouth_x):
    """(rows, columns): 1 on the lower lip and jaw, 0 on the upper lip, smooth beyond the mouth corners."""
    half_row = 0.5 / (len(aligned) - 1)
    spread = half_row + 0.006 * np.clip(mouth_x - mouth_x[slit].max(), 0.0, None)
    return _smoothstep(-1.0, 1.0, (v_mouth - aligned[:, None]) / spread)


class _Layout:
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
        base, direction, final = _surface(np.broadcast_to(theta[half], t.shape), t)
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


# ---------------------------------------------------------------------------
# Face region and landmarks


def _face_mask(layout):
    """Vertices of the face: above the jaw line and in front of the ears."""
    x, y, z = layout.base[:, 0], layout.base[:, 1], layout.base[:, 2]
    return (y - _jaw_cut_height(x, z) > 2.0) & (np.abs(layout.theta) <= np.radians(FACE_THETA_DEG))


# Right-side (x < 0) landmark targets on the base surface (mm); the left side mirrors them.
_JAW_TARGETS = {0: (-73.5, 18.5, 18.0), 1: (-71.5, -1.0, 20.0), 2: (-68.0, -19.0, 22.0), 3: (-64.0, -35.5, 26.0),
                4: (-58.5, -53.0, 35.0), 5: (-48.5, -67.0, 51.0), 6: (-37.0, -75.5, 71.0), 7: (-22.0, -82.5, 89.0)}
_BROW_X = {17: -57.5, 18: -49.2, 19: -38.7, 20: -28.5, 21: -19.3}
_NOSTRILS = {31: (-12.3, -17.0), 32: (-7.2, -18.0)}
_EYE_POINTS = {36: (1.0, "corner"), 37: (0.45, "upper"), 38: (-0.3, "upper"),
               39: (-1.0, "corner"), 40: (-0.35, "lower"), 41: (0.43, "lower")}
_UPPER_LIP_X = {49: -16.8, 50: -6.0}
_LOWER_LIP_X = {58: -7.9, 59: -15.6}
_INNER_LIP_X = {61: -7.7, 67: -7.7}
_MIRROR = {0: 16, 1: 15, 2: 14, 3: 13, 4: 12, 5: 11, 6: 10, 7: 9, 17: 26, 18: 25, 19: 24, 20: 23, 21: 22,
           31: 35, 32: 34, 36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 48: 54, 49: 53, 50: 52, 58: 56,
           59: 55, 60: 64, 61: 63, 67: 65}


def _right_side_targets():
    """Target (x, y) on the base surface of each right-side landmark except the jaw."""
    targets = {k: (x, float(_brow_line(x))) for k, x in _BROW_X.items()}
    targets.update(_NOSTRILS)
    for k, (ex, which) in _EYE_POINTS.items():
        x = -(EYE_X + ex * EYE_HALF_WIDTH)
        _, upper, lower = _eye_frame(np.array(x), EYE_Y)
        targets[k] = (x, {"corner": EYE_Y, "upper": float(upper), "lower": float(lower)}[which])
    targets[48] = (-MOUTH_HALF_WIDTH, MOUTH_Y)
    for k, x in _UPPER_LIP_X.items():
        targets[k] = (x, MOUTH_Y + float(_lip_borders(np.array(x))[0]))
    for k, x in _LOWER_LIP_X.items():
        targets[k] = (x, MOUTH_Y - float(_lip_borders(np.array(x))[1]))
    return targets


def _landmarks(layout, face):
    """The 68 landmark vertices (0-based), mirror-symmetric, all distinct."""
    n_cols, mid = layout.columns, layout.mid
    column = np.arange(layout.n) % n_cols
    row = np.arange(layout.n) // n_cols
    base = layout.base
    taken = np.zeros(layout.n, bool)
    chosen = {}

    def pick(k, candidates, distance):
        distance = np.where(candidates & ~taken, distance, np.inf)
        chosen[k] = int(np.argmin(distance))
        if not np.isfinite(distance[chosen[k]]):
            raise ValueError(f"no free vertex for landmark {k}: the grid is too coarse")
        taken[chosen[k]] = True

    midline = column == mid
    right = column < mid
    upper_row, lower_row = row == layout.lower_lip_row + 1, row == layout.lower_lip_row
    corner_column = np.flatnonzero(layout.slit).min()
    pick(62, midline & upper_row, 0.0)
    pick(66, midline & lower_row, 0.0)
    pick(60, right & upper_row & (column == corner_column), 0.0)
    for k, candidates in ((61, upper_row), (67, lower_row)):
        pick(k, right & candidates & layout.slit[column], np.abs(base[:, 0] - _INNER_LIP_X[k]))
    pick(30, midline, -layout.mean[:, 2])
    lowest_face_row = row[midline & face].min()
    pick(8, midline & (row == lowest_face_row), 0.0)
    upper, lower = _lip_borders(np.array(0.0))
    for k, y in ((27, 26.3), (28, 14.3), (29, 2.3), (33, -19.4), (51, MOUTH_Y + upper), (57, MOUTH_Y - lower)):
        pick(k, midline, np.abs(layout.mean[:, 1] - y))
    front = right & (np.cos(layout.theta) > 0.3)
    for k, (x, y) in _right_side_targets().items():
        pick(k, front, np.hypot(base[:, 0] - x, base[:, 1] - y))
    jaw_line = right & face & _has_neighbour_outside(face, layout.rows, n_cols)
    for k, target in _JAW_TARGETS.items():
        pick(k, jaw_line, np.linalg.norm(base - np.array(target), axis=1))
    for k, partner in _MIRROR.items():
        chosen[partner] = layout.mirror(chosen[k])
    return np.array([chosen[k] for k in range(68)], np.int64)


def _face_weight(layout):
    """A smooth version of the face mask, for fields that must not jump at the jaw line."""
    x, y, z = layout.base[:, 0], layout.base[:, 1], layout.base[:, 2]
    limit = np.radians(FACE_THETA_DEG)
    return _smoothstep(-4.0, 8.0, y - _jaw_cut_height(x, z)) * _smoothstep(limit + 0.1, limit - 0.1,
                                                                         np.abs(layout.theta))


def _has_neighbour_outside(mask, rows, columns):
    grid = mask.reshape(rows, columns)
    padded = np.pad(grid, 1, constant_values=True)
    inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return (grid & ~inside).reshape(-1)


# ---------------------------------------------------------------------------
# Identity, expression and albedo fields (mm or 0-255 levels, (n, 3) each)


def _side(x, sign):
    return _smoothstep(-3.0, 3.0, sign * x)


def _lips_area(x, y):
    return _bump(x, y, 0.0, MOUTH_Y - 1.0, 31.0, 17.0)


def _mouth_corners(x, y, radius=10.0):
    return _gauss(np.abs(x), y, MOUTH_HALF_WIDTH, MOUTH_Y, radius, 0.8 * radius)


def _jaw_weight(layout):
    """Share of the jaw's motion: lower lip, chin and jaw below the mouth line, not the neck."""
    x, y, z = layout.base[:, 0], layout.base[:, 1], layout.base[:, 2]
    return layout.below * _smoothstep(70.0, 40.0, np.abs(x)) * _smoothstep(45.0, 75.0, z) \
        * _smoothstep(-105.0, -88.0, y)


def _eye_closing(x, y, sign):
    """Downward travel of the upper lid of one eye for a full blink (mm, <= 0)."""
    ex, upper, lower = _eye_frame(x, y)
    opening = np.clip(upper - lower, 0.0, None)
    travel = np.clip(y - lower, 0.0, opening)
    above = np.clip(y - upper, 0.0, None)
    return -travel * np.exp(-(above / 7.0) ** 2) * _side(x, sign) * _smoothstep(1.3, 0.9, np.abs(ex))


def _vector(n, dx=0.0, dy=0.0, dz=0.0):
    """(n, 3) displacements from per-vertex (or constant) components."""
    return np.stack(np.broadcast_arrays(dx, dy, dz, np.zeros(n)), axis=1)[:, :3]


def _named_identity_fields(layout):
    """Named identity components at one standard deviation, (n, 3) mm each."""
    x, y, z = layout.mean.T
    bx, by = layout.base[:, 0], layout.base[:, 1]
    n, along, front = layout.n, layout.direction, _front(layout.theta)
    nose = _gauss(bx, by, 0.0, 0.0, 16.0, 22.0)
    eyes = _gauss(np.abs(bx), by, EYE_X, EYE_Y, 16.0, 11.0)
    cheeks = _gauss(np.abs(bx), by, 45.0, -12.0, 16.0, 20.0) * front
    chin = _gauss(bx, by, 0.0, -75.0, 24.0, 15.0)
    lips = _lips_area(bx, by)
    brows = np.exp(-((by - _brow_line(bx) + 2.0) / 8.0) ** 2) * _smoothstep(66.0, 50.0, np.abs(bx)) * front
    temples = _smoothstep(35.0, 90.0, y) * front
    radius = np.hypot(bx, layout.base[:, 2] - AXIS_Z)
    outwards = {
        "nose size": 3.0 * _nose_relief(bx, by) / 25.0 * front,
        "cheek fullness": 2.5 * cheeks,
        "brow ridge": 2.0 * brows,
        "lip fullness": 0.4 * _mouth_relief(bx, by) * lips,
        "neck thickness": 3.0 * _smoothstep(-75.0, -110.0, y),
        "eye depth": -0.25 * _eye_relief(bx, by) * front,
        "ear size": 0.2 * _ear_relief(layout.theta, by, radius),
    }
    moves = {
        "face width": _vector(n, 0.045 * x),
        "face length": _vector(n, dy=0.035 * _smax(_smin(y + 5.0, 95.0, 5.0), -88.0, 5.0)),
        "face depth": _vector(n, dz=0.035 * (z - AXIS_Z)),
        "jaw width": _vector(n, 0.07 * x * _smoothstep(-15.0, -60.0, y)),
        "lower face height": _vector(n, dy=-0.04 * _smax(-40.0 - y, 0.0, 5.0)),
        "temple width": _vector(n, 0.06 * x * temples),
        "forehead slope": _vector(n, dz=-0.07 * _softplus(y - 30.0, 5.0)),
        "chin protrusion": _vector(n, dy=-1.0 * chin, dz=3.0 * chin),
        "nose width": _vector(n, 0.2 * x * nose),
        "nose length": _vector(n, dy=-2.5 * _gauss(bx, by, 0.0, -8.0, 14.0, 12.0)),
        "eye spacing": _vector(n, 2.0 * np.sign(bx) * eyes),
        "eye height": _vector(n, dy=2.0 * eyes),
        "mouth width": _vector(n, 0.15 * x * lips),
        "mouth height": _vector(n, dy=2.0 * lips),
    }
    return list(moves.values()) + [along * amount[:, None] for amount in outwards.values()]


def _named_expression_fields(layout):
    """Named expression components for one unit of coefficient, (n, 3) mm each, most common first."""
    x, y, z = layout.mean.T
    bx, by = layout.base[:, 0], layout.base[:, 1]
    n, along = layout.n, layout.direction
    jaw, lips, below = _jaw_weight(layout), _lips_area(bx, by), layout.below
    corners = _mouth_corners(bx, by)
    cheeks = _gauss(np.abs(bx), by, 40.0, -15.0, 15.0, 12.0)
    brows = np.exp(-((by - _brow_line(bx)) / 9.0) ** 2) * _smoothstep(64.0, 50.0, np.abs(bx)) \
        * _smoothstep(4.0, 16.0, np.abs(bx))
    forehead = _smoothstep(40.0, 60.0, by) * _smoothstep(0.3, 0.7, np.cos(layout.theta))
    inner_brows = _gauss(np.abs(bx), by, 22.0, 44.0, 12.0, 9.0)
    nose = _gauss(bx, by, 0.0, 2.0, 16.0, 12.0)
    chin = _gauss(bx, by, 0.0, -68.0, 24.0, 16.0)
    hinge_y, hinge_z, jaw_angle = 8.0, 5.0, 0.08    # about 8 mm of lower lip travel per unit
    smile = _vector(n, 3.0 * np.sign(bx) * corners, 3.5 * corners + 2.0 * cheeks, -1.5 * corners + 1.5 * cheeks)
    raise_brows = _vector(n, dy=4.0 * np.maximum(brows, 0.4 * forehead))
    return [
        _vector(n, dy=-jaw_angle * (z - hinge_z) * jaw, dz=jaw_angle * (y - hinge_y) * jaw),  # mouth open
        smile,
        raise_brows,
        _vector(n, -0.25 * x * lips, dz=5.0 * lips),                                          # pucker
        _vector(n, -2.5 * np.sign(bx) * inner_brows, -3.0 * inner_brows, 0.5 * inner_brows),  # frown
        _vector(n, dy=0.55 * _eye_closing(bx, by, -1.0)),                                     # right eye closes
        _vector(n, dy=0.55 * _eye_closing(bx, by, 1.0)),                                      # left eye closes
        along * (5.0 * _bump(np.abs(bx), by, 40.0, -38.0, 22.0, 22.0))[:, None],              # cheeks puff
        _vector(n, 4.0 * jaw),                                                                # jaw sideways
        _vector(n, 3.5 * np.sign(bx) * _mouth_corners(bx, by, 13.0), -0.25 * (by - MOUTH_Y) * lips),  # stretch
        _vector(n, dy=3.0 * (1.0 - below) * lips),                                            # upper lip up
        _vector(n, dy=-3.0 * below * lips, dz=1.0 * below * lips),                            # lower lip down
        _vector(n, dy=-0.3 * (by - MOUTH_Y) * lips, dz=-2.0 * lips),                          # lips pressed
        _vector(n, 4.0 * _bump(bx, by, 0.0, MOUTH_Y, 36.0, 24.0)),                            # mouth sideways
        _vector(n, dy=1.5 * nose, dz=-0.5 * nose),                                            # nose wrinkle
        _vector(n, dy=1.5 * _gauss(np.abs(bx), by, EYE_X, EYE_Y - 5.0, 14.0, 5.0)),           # squint
        _vector(n, dy=2.5 * chin, dz=1.0 * chin),                                             # chin up
        along * (-3.0 * _bump(np.abs(bx), by, 45.0, -25.0, 15.0, 18.0))[:, None],             # cheeks in
        raise_brows * _side(bx, 1.0)[:, None],                                                # left brow up
        smile * _side(bx, 1.0)[:, None],                                                      # half smile
    ]


_EXPRESSION_EV = [1.5, 1.2, 0.9, 0.8, 0.6, 0.5, 0.49, 0.45, 0.42, 0.4, 0.38, 0.36, 0.34, 0.32, 0.3, 0.28,
                  0.26, 0.25, 0.24, 0.23]


def _smooth_random_fields(rng, layout, count, channels, start_resolution):
    """(count, n, channels) smooth random fields over the grid, unit RMS, finer as k grows."""
    u = layout.uv[:layout.columns, 0]
    v = layout.uv[::layout.columns, 1]
    fields = np.empty((count, layout.n, channels))
    for k in range(count):
        resolution = start_resolution + k // 6
        centres = np.linspace(0.0, 1.0, resolution)
        width = 1.0 / (resolution - 1)
        along_u = np.exp(-((u[:, None] - centres) / width) ** 2)
        along_v = np.exp(-((v[:, None] - centres) / width) ** 2)
        weights = rng.standard_normal((channels, resolution, resolution))
        field = np.matmul(np.matmul(along_v, weights), along_u.T)
        field = np.moveaxis(field, 0, -1).reshape(layout.n, channels)
        fields[k] = field / np.sqrt(np.mean(field ** 2))
    return fields


def _orthonormal_basis(fields):
    """Orthonormal columns (rows, k) spanning fields (k, n, c) taken by decreasing norm, and the norms.

    Cholesky QR, twice (numerically as orthonormal as Householder QR, and all
    matrix products); column j keeps a positive projection on the j-th field.
    """
    norms = np.array([np.linalg.norm(f) for f in fields])
    order = np.argsort(-norms, kind="stable")
    matrix = np.empty((fields[0].size, len(fields)), order="F")
    for j, k in enumerate(order):
        matrix[:, j] = fields[k].reshape(-1)
    for _ in range(2):
        factor = np.linalg.cholesky(matrix.T @ matrix)
        matrix = solve_triangular(factor, matrix.T, lower=True).T
    return matrix, _strictly_decreasing(norms[order])


def _strictly_decreasing(values):
    """Values made strictly decreasing (ties nudged down by 0.01 %)."""
    values = np.array(values, dtype=np.float64)
    for k in range(1, len(values)):
        values[k] = min(values[k], values[k - 1] * (1.0 - 1e-4))
    return values


def _identity_basis(layout, rng):
    """shapePC (3n, 199) orthonormal and shapeEV (199,): named components, then random ones (um)."""
    named = _named_identity_fields(layout)
    count = N_SHAPE - len(named)
    amplitude = 0.6 * (1.0 + np.arange(count)) ** -1.1
    random = _smooth_random_fields(rng, layout, count, 3, 3) * amplitude[:, None, None]
    fields = [f * MICROMETRES_PER_MM for f in named] + list(random * MICROMETRES_PER_MM)
    return _orthonormal_basis(fields)


def _expression_basis(layout, rng):
    """expPC (3n, 29) in um per unit of coefficient and expEV (29,), decreasing."""
    named = _named_expression_fields(layout)
    count = N_EXP - len(named)
    face = _face_weight(layout) * _front(layout.theta)
    random = _smooth_random_fields(rng, layout, count, 3, 4) * face[None, :, None]
    fields = np.stack(named + list(random)) * MICROMETRES_PER_MM
    ev = np.r_[_EXPRESSION_EV, np.linspace(0.22, 0.12, count)]
    return fields.reshape(N_EXP, -1).T, ev


# ---------------------------------------------------------------------------
# Albedo


SKIN = np.array([214.0, 166.0, 140.0])


def _paint(color, where, paint):
    """Blend `paint` over (n, 3) colours with per-vertex opacity `where`."""
    return color * (1.0 - where[:, None]) + np.asarray(paint) * where[:, None]


def _albedo(layout, rng):
    """Mean albedo (n, 3), RGB 0-255: skin, brows, eyes, lips, nostrils."""
    x, y = layout.base[:, 0], layout.base[:, 1]
    color = _skin(layout, rng)
    color = _paint_brows(color, x, y, _front(layout.theta))
    color = _paint_eyes(color, x, y, _front(layout.theta))
    color = _paint_mouth(color, x, y)
    return np.clip(color, 0.0, 255.0)


def _skin(layout, rng):
    """Skin tone with low-frequency mottling, redder cheeks, nose tip and ears, a darker neck."""
    x, y = layout.base[:, 0], layout.base[:, 1]
    color = SKIN + 4.0 * _smooth_random_fields(rng, layout, 1, 3, 9)[0]
    cheeks = _gauss(np.abs(x), y, 42.0, -8.0, 16.0, 14.0) * _front(layout.theta)
    color += np.array([14.0, -6.0, -4.0]) * cheeks[:, None]
    color += np.array([10.0, -4.0, -4.0]) * _gauss(x, y, 0.0, -6.0, 8.0, 7.0)[:, None]
    ears = np.clip(_ear_relief(layout.theta, y, 80.0), 0.0, None) / 15.0
    color += np.array([14.0, -2.0, -6.0]) * ears[:, None]
    neck = (1.0 - _face_weight(layout)) * _smoothstep(0.0, -30.0, y)
    return color * (1.0 - 0.14 * neck)[:, None]


def _paint_brows(color, x, y, front):
    ax = np.abs(x)
    band = np.exp(-((y - _brow_line(x) - 0.5) / (3.8 - 0.035 * ax)) ** 6)
    brows = band * _smoothstep(14.0, 19.0, ax) * _smoothstep(62.0, 54.0, ax) * front
    return _paint(color, 0.85 * brows, [72.0, 52.0, 42.0])


def _paint_eyes(color, x, y, front):
    """Shaded lids, white eyeballs, brown irises with dark pupils, a dark upper lash line."""
    ex, upper, lower = _eye_frame(x, y)
    outside = -np.minimum(np.minimum(upper - y, y - lower), (1.0 - np.abs(ex)) * 6.0)
    lids = 0.25 * np.exp(-(np.clip(outside, 0.0, None) / 4.0) ** 2) * _smoothstep(1.6, 1.2, np.abs(ex))
    color = _paint(color, lids, [150.0, 100.0, 90.0])
    color = _paint(color, _smoothstep(0.3, -0.3, outside) * front, [236.0, 232.0, 226.0])
    visible = _smoothstep(0.6, -0.2, outside)
    iris = np.hypot(np.abs(x) - EYE_X, y - EYE_Y - 0.6)
    color = _paint(color, _smoothstep(5.9, 5.3, iris) * visible, [92.0, 62.0, 42.0])
    color = _paint(color, _smoothstep(2.5, 2.0, iris) * visible, [18.0, 12.0, 12.0])
    lash = np.exp(-((y - upper - 0.6) / 0.9) ** 2) * _smoothstep(1.15, 0.9, np.abs(ex)) \
        * _smoothstep(EYE_Y, EYE_Y + 1.0, y)
    return _paint(color, 0.8 * lash * front, [45.0, 32.0, 28.0])


def _paint_mouth(color, x, y):
    """Red lips, a dark mouth line, dark nostrils."""
    ax = np.abs(x)
    upper, lower = _lip_borders(x)
    dy = y - MOUTH_Y
    vermilion = _smoothstep(0.6, -0.6, dy - upper) * _smoothstep(-0.6, 0.6, dy + lower) \
        * _smoothstep(MOUTH_HALF_WIDTH + 1.5, MOUTH_HALF_WIDTH - 1.5, ax)
    color = _paint(color, vermilion, [190.0, 98.0, 98.0])
    mouth_line = np.exp(-(dy / 0.9) ** 2) * _smoothstep(MOUTH_HALF_WIDTH + 1.0, MOUTH_HALF_WIDTH - 3.0, ax)
    color = _paint(color, 0.8 * mouth_line, [105.0, 45.0, 50.0])
    return _paint(color, 0.85 * _gauss(ax, y, 6.5, -17.0, 3.6, 2.2), [95.0, 52.0, 48.0])


def _named_albedo_fields(layout):
    """Named albedo components at one standard deviation (0-255 levels)."""
    bx, by = layout.base[:, 0], layout.base[:, 1]
    ax = np.abs(bx)
    ones = np.ones(layout.n)[:, None]
    eyes = _gauss(ax, by, EYE_X, EYE_Y + 0.6, 5.5, 5.5)
    lips = _lips_area(bx, by) * _gauss(bx, by, 0.0, MOUTH_Y, 24.0, 8.0)
    brows = np.exp(-((by - _brow_line(bx)) / 4.0) ** 2) * _smoothstep(14.0, 20.0, ax) * _smoothstep(62.0, 54.0, ax)
    cheeks = _gauss(ax, by, 42.0, -8.0, 16.0, 14.0)
    face = _face_weight(layout)[:, None]
    return [
        ones * np.array([24.0, 20.0, 17.0]),               # lighter / darker
        ones * np.array([7.0, -2.5, -1.5]),                # redder / paler
        ones * np.array([3.5, 3.0, -6.5]),                 # yellower / bluer
        face * np.array([6.0, 4.0, 3.0]),                  # face against neck
        cheeks[:, None] * np.array([14.0, -4.0, -3.0]),    # cheek blush
        lips[:, None] * np.array([22.0, -8.0, -6.0]),      # lip colour
        brows[:, None] * np.array([-25.0, -20.0, -16.0]),  # brow darkness
        eyes[:, None] * np.array([30.0, 26.0, 18.0]),      # iris lightness
        _gauss(bx, by, 0.0, -5.0, 10.0, 12.0)[:, None] * np.array([12.0, -3.0, -3.0]),  # nose redness
        _gauss(ax, by, EYE_X, EYE_Y - 8.0, 14.0, 5.0)[:, None] * np.array([-10.0, -10.0, -6.0]),  # eye bags
    ]


def _albedo_basis(layout, rng):
    """texPC (3n, 199) orthonormal and texEV (199,) in 0-255 levels."""
    named = _named_albedo_fields(layout)
    count = N_TEX - len(named)
    amplitude = 2.5 * (1.0 + np.arange(count)) ** -0.8
    random = _smooth_random_fields(rng, layout, count, 3, 3) * amplitude[:, None, None]
    return _orthonormal_basis(named + list(random))


# ---------------------------------------------------------------------------


def _column(values):
    return np.asarray(values, np.float64).reshape(-1, 1).astype(np.float32)


def _landmarks_on_pixel_centres(uv, landmarks, size=UV_MAP_SIZE):
    """UV (n, 2) float64 with the landmark vertices moved onto pixel centres of the size x size map.

    A position map read at uv_kpt_ind then returns each landmark exactly (the
    pixel centre is the vertex). The move is at most half a pixel, less than
    half a grid cell, so no triangle folds over; the midline landmarks go from
    u = 127.5 to 128, where uv_kpt_ind rounds them anyway.
    """
    uv = np.array(uv, dtype=np.float64)
    uv[landmarks] = np.floor(uv[landmarks] * (size - 1) + 0.5) / (size - 1)
    return uv


def make_synthetic_model(n_vertices: int = 50_000, seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic morphable face model in the BFM layout (formats.md section 2).

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
    layout = _Layout(n_vertices)
    face = _face_mask(layout)
    landmarks = _landmarks(layout, face)
    shape_pc, shape_ev = _identity_basis(layout, rng)
    exp_pc, exp_ev = _expression_basis(layout, rng)
    tex_mu = _albedo(layout, rng)
    tex_pc, tex_ev = _albedo_basis(layout, rng)
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
        "UV": _landmarks_on_pixel_centres(layout.uv, landmarks),
        "face_vertex_ind": np.flatnonzero(face).astype(np.int32),
    }
