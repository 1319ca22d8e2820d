"""Fit a 3D morphable model to 68 2D landmarks (orthographic 300W-LP pose).

`fit_landmarks(model, landmarks_xy, image_height)` returns the pose in the
300W-LP Pose_Para convention (docs: docs/formats.md section 3) and identity and
expression coefficients in the units of the model's bases.

Objective (pixels, placed coordinates, y up):
    sum_j |s R[:2] X_j + t - obs_j|^2 + regularization * sum_i (c_i / ev_i)^2
over the pose (R, s, t) and the leading `shape_count` identity and `exp_count`
expression coefficients c (40 and 10 by default; on the built-in model 80 and
29 lower the mean reprojection error only from 0.27 to 0.20 px and leave the
pose as it is, 20 identity components raise it to 0.6 px, 1.8 px worst). The data term is in px^2,
so `regularization` reads as the assumed landmark noise variance per
coordinate (px^2): the minimum is the MAP estimate under that Gaussian noise
and the model's N(0, ev^2) prior. Only the 68 landmark rows of the basis (and
the jaw-contour candidates) are used: a fit takes a few milliseconds.

Method:
1. Alternation, `n_iterations` times: (a) an affine camera (2 x 4) from the
   2D-3D correspondences by linear least squares, projected to a scaled
   orthographic camera (rotation: nearest matrix with orthonormal rows by SVD,
   third row their cross product; scale and 2D translation then re-solved in
   closed form for that rotation); (b) with the pose fixed, the coefficients by
   Tikhonov-regularised linear least squares.
2. Joint Levenberg-Marquardt on pose and coefficients together, from the
   alternation's result. The alternation alone creeps along the valley where
   yaw trades against face depth and stops with a noticeably higher cost
   (yaw errors of 4-5 degrees where the minimum is within 1).
3. Jaw contour (landmarks 0-7 and 9-16). On a turned face the contour of the
   far side is usually annotated on the silhouette (300W-LP's pt2d, 2D
   detectors), not on fixed vertices. Each contour landmark has a candidate
   line (computed once per model from the mean face, cached): face vertices
   at the landmark's height, on its side of the face, at 30 %-110 % of its
   distance from the midline, one per x bin. Once the model's x axis leaves
   the image plane by more than CONTOUR_YAW_DEG (for pure yaw: |yaw| >
   CONTOUR_YAW_DEG), the far side's contour landmarks take the candidate that
   is outermost along the projected outward x axis: the silhouette. The rule
   is re-applied after every pose estimate. Near-side and chin landmarks and
   all landmarks of a near-frontal face keep their vertices.
   contour="silhouette" always applies the rule; contour="fixed" never does;
   contour="auto" (default) fits with the rule and, if the rule moved any
   landmark, fits again from scratch without it, keeping the fit with the
   lower objective (ties: fixed vertices). So fixed-vertex landmarks
   (AFLW2000-3D pt3d_68, projected model landmarks) and silhouette contours
   are both fit; a fixed-vertex fit alone, given silhouette contours, can
   settle on a near-frontal pose tens of degrees off.

tz is chosen so that the mean z of the 68 placed fitted landmarks is 0 (the z
origin of an orthographic pose is arbitrary).
"""

import numbers
import weakref
from typing import NamedTuple

import numpy as np

from prn.rendering.geometry.pose import angles_from_rotations
from prn.rendering.util.errors import InputError

N_LANDMARKS = 68
DEFAULT_SHAPE_COUNT = 40
DEFAULT_EXP_COUNT = 10
DEFAULT_ITERATIONS = 4
DEFAULT_REGULARIZATION = 1.0        # px^2
CONTOUR_YAW_DEG = 10.0
CONTOUR_MODES = ("auto", "silhouette", "fixed")

_RIGHT_CONTOUR = np.arange(0, 8)     # subject's right jaw, model x < 0 (the chin, 8, never moves)
_LEFT_CONTOUR = np.arange(9, 17)     # subject's left jaw, model x > 0
_MIDLINE = np.array([8, 27, 28, 29, 30, 33, 51, 57, 62, 66])
_CANDIDATE_BINS = 32
_INNER_FRACTION, _OUTER_FRACTION = 0.3, 1.1   # candidate reach, share of the landmark's
_BAND_FRACTION = 0.03                           # height tolerance, share of the landmarks' height span
_LM_STEPS = 10
_LM_TOLERANCE = 1e-6          # stop when a step lowers the objective by less (relative)
_CONTOUR_ROUNDS = 4


class FitResult(NamedTuple):
    """Result of fit_landmarks.

    pose (7,) float64: [pitch, yaw, roll, tx, ty, tz, s] (radians, px, px per model unit).
    shape_params (K,), exp_params (E,) float64: basis units, zeros past the fitted counts.
    reprojection_error: mean distance (px) between the fitted and the given landmarks.
    landmark_indices (68,) int64: the vertex used for each landmark (after contour re-assignment).
    """

    pose: np.ndarray
    shape_params: np.ndarray
    exp_params: np.ndarray
    reprojection_error: float
    landmark_indices: np.ndarray


class _ModelData:
    """Per model: float64 mean and basis rows of the landmark and contour-candidate vertices."""

    def __init__(self, face_model):
        vertices = face_model.mean.reshape(-1, 3).astype(np.float64)
        landmarks = np.asarray(face_model.landmarks, np.int64)
        if landmarks.shape != (N_LANDMARKS,):
            raise InputError(f"{face_model.path}: the model has {landmarks.size} landmarks, "
                             f"expected {N_LANDMARKS}")
        lines = _candidate_lines(vertices, landmarks, face_model.face_vertices)
        ids, inverse = np.unique(np.concatenate([landmarks] + lines), return_inverse=True)
        inverse = inverse.reshape(-1)
        self.vertex_ids = ids                                   # table row -> vertex id
        self.landmark_rows = inverse[:N_LANDMARKS]
        ends = np.cumsum([N_LANDMARKS] + [len(line) for line in lines])
        self.candidate_rows = inverse[N_LANDMARKS:]             # all lines, concatenated
        self.line_bounds = np.stack([ends[:-1], ends[1:]], 1) - N_LANDMARKS   # (16, 2)
        self.mean = vertices[ids]                               # (m, 3)
        basis_rows = (3 * ids[:, None] + np.arange(3)).reshape(-1)
        self.basis = face_model.basis[basis_rows].astype(np.float64).reshape(len(ids), 3, -1)
        self.n_shape = face_model.n_shape
        self.ev = np.concatenate([face_model.shape_ev, face_model.exp_ev]).astype(np.float64)
        self._columns = {}

    def columns(self, shape_count, exp_count):
        """(basis (m, 3, p) of the fitted columns, their ev (p,), column ids (p,))."""
        key = (shape_count, exp_count)
        if key not in self._columns:
            cols = np.r_[np.arange(shape_count), self.n_shape + np.arange(exp_count)].astype(np.int64)
            if len(self._columns) >= 8:
                self._columns.clear()
            self._columns[key] = (np.ascontiguousarray(self.basis[:, :, cols]), self.ev[cols], cols)
        return self._columns[key]


_CACHE = weakref.WeakKeyDictionary()


def _model_data(face_model) -> _ModelData:
    data = _CACHE.get(face_model)
    if data is None:
        data = _CACHE[face_model] = _ModelData(face_model)
    return data


def _candidate_lines(vertices, landmarks, face_vertices):
    """Per contour landmark (0-7, then 9-16) the vertex ids of its candidate line.

    Candidates: face vertices (all vertices if the model lists none) on the
    landmark's side, 30 %-110 % of its distance from the midline, within 3 % of
    the landmarks' height span of its height and not behind it; that range is
    cut into 32 bins, each giving the vertex nearest the landmark's height.
    The landmark's own vertex is always a candidate.
    """
    pool = np.arange(len(vertices)) if face_vertices is None else np.asarray(face_vertices, np.int64)
    points = vertices[pool]
    lm = vertices[landmarks]
    centre_x = lm[_MIDLINE, 0].mean()
    band = _BAND_FRACTION * np.ptp(lm[:, 1])
    lines = []
    for k in np.concatenate([_RIGHT_CONTOUR, _LEFT_CONTOUR]):
        side = -1.0 if k < 8 else 1.0
        reach = max(side * (lm[k, 0] - centre_x), 1e-12)
        share = side * (points[:, 0] - centre_x) / reach
        dy = np.abs(points[:, 1] - lm[k, 1])
        keep = ((share >= _INNER_FRACTION) & (share <= _OUTER_FRACTION) & (dy <= band)
                & (points[:, 2] >= lm[k, 2] - band))
        ids, share, dy = pool[keep], share[keep], dy[keep]
        bins = np.minimum(((share - _INNER_FRACTION) / (_OUTER_FRACTION - _INNER_FRACTION)
                           * _CANDIDATE_BINS).astype(np.int64), _CANDIDATE_BINS - 1)
        order = np.lexsort((dy, bins))                  # by bin, nearest in height first
        first = np.ones(len(order), bool)
        first[1:] = bins[order][1:] != bins[order][:-1]
        lines.append(np.unique(np.r_[landmarks[k], ids[order][first]]).astype(np.int64))
    return lines


def _is_real(value):
    return (isinstance(value, (numbers.Real, np.floating, np.integer))
            and not isinstance(value, (bool, np.bool_)))


def _check_inputs(landmarks_xy, image_height, n_iterations, shape_count, exp_count, regularization,
                  contour):
    points = np.asarray(landmarks_xy)
    if points.shape != (N_LANDMARKS, 2) or not np.issubdtype(points.dtype, np.number) or np.iscomplexobj(points):
        raise InputError(f"landmarks have shape {points.shape} ({points.dtype}), "
                         f"expected ({N_LANDMARKS}, 2) numbers")
    points = points.astype(np.float64)
    if not np.isfinite(points).all():
        raise InputError("landmarks contain NaN or inf")
    if not (_is_real(image_height) and np.isfinite(image_height) and image_height > 0):
        raise InputError(f"image height {image_height!r} is not a positive number")
    for name, value in (("n_iterations", n_iterations), ("shape_count", shape_count),
                        ("exp_count", exp_count)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InputError(f"{name} = {value!r} is not a non-negative integer")
    if n_iterations < 1:
        raise InputError(f"n_iterations = {n_iterations} must be at least 1")
    if not (_is_real(regularization) and np.isfinite(regularization) and regularization >= 0):
        raise InputError(f"regularization = {regularization!r} is not a non-negative number")
    if contour not in CONTOUR_MODES:
        raise InputError(f"contour = {contour!r}, expected one of {', '.join(CONTOUR_MODES)}")
    spread = np.linalg.svd(points - points.mean(0), compute_uv=False)
    if spread[0] < 1e-6 or spread[1] < 1e-3 * spread[0]:
        raise InputError("landmarks are degenerate (all coincident or on one line)")
    return points


class _State(NamedTuple):
    rows: np.ndarray            # (68,) rows of the model-data tables
    rotation: np.ndarray        # (3, 3)
    scale: float
    translation: np.ndarray     # (2,) placed x, y
    coefficients: np.ndarray    # (p,) basis units
    cost: float


class _Problem:
    """One fit: observed placed landmarks, the fitted basis columns, the objective."""

    def __init__(self, data, observed, shape_count, exp_count, regularization):
        self.data = data
        self.observed = observed
        self.basis, self.ev, self.cols = data.columns(shape_count, exp_count)
        self.regularization = regularization
        self.sin_limit = np.sin(np.radians(CONTOUR_YAW_DEG))
        self.reassigned = False         # whether the silhouette rule ever moved a landmark

    def points(self, rows, coefficients):
        """Model-space positions (len(rows), 3) of table rows for the coefficients."""
        return self.data.mean[rows] + self.basis[rows] @ coefficients

    def cost(self, rows, rotation, scale, translation, coefficients):
        fitted = scale * self.points(rows, coefficients) @ rotation[:2].T + translation
        return float(np.sum((fitted - self.observed) ** 2)
                     + self.regularization * np.sum((coefficients / self.ev) ** 2))

    def turned(self, rotation):
        return abs(rotation[2, 0]) > self.sin_limit

    def state(self, rows, coefficients):
        """The state with the best pose for given rows and coefficients."""
        rotation, scale, translation = _pose(self.points(rows, coefficients), self.observed)
        return _State(rows, rotation, scale, translation, coefficients,
                      self.cost(rows, rotation, scale, translation, coefficients))


def _pose(model_points, observed):
    """Scaled orthographic camera taking (68, 3) model points to (68, 2) placed points.

    Returns R (3, 3), s, t (2,) with observed ~ s * model_points @ R[:2].T + t.
    """
    mean3, mean2 = model_points.mean(0), observed.mean(0)
    centred3, centred2 = model_points - mean3, observed - mean2
    affine = np.linalg.lstsq(centred3, centred2, rcond=None)[0].T      # (2, 3)
    u, _, vt = np.linalg.svd(affine, full_matrices=False)
    rows = u @ vt
    rotation = np.vstack([rows, np.cross(rows[0], rows[1])])
    projected = centred3 @ rows.T
    denominator = np.sum(projected * projected)
    scale = np.sum(projected * centred2) / denominator if denominator > 0 else 0.0
    if not scale > 0:                   # degenerate geometry: the mean of the row norms
        scale = float(np.linalg.norm(affine, axis=1).mean())
    return rotation, scale, mean2 - scale * (mean3 @ rows.T)


def _coefficients(problem, rows, rotation, scale, translation):
    """Coefficients (p,) for a fixed pose: Tikhonov least squares in whitened units."""
    basis, ev = problem.basis[rows], problem.ev
    if basis.shape[-1] == 0:
        return np.zeros(0)
    plane = rotation[:2]
    design = scale * np.einsum("ij,njp->nip", plane, basis).reshape(-1, basis.shape[-1]) * ev
    residual = (problem.observed - translation - scale * problem.data.mean[rows] @ plane.T).reshape(-1)
    normal = design.T @ design
    normal[np.diag_indices_from(normal)] += problem.regularization
    return np.linalg.solve(normal, design.T @ residual) * ev


def _silhouette_rows(problem, state):
    """Far-side contour landmarks moved to their outermost candidate (module doc, step 3)."""
    data, rotation = problem.data, state.rotation
    rows = state.rows.copy()
    far_right = rotation[2, 0] > 0          # model +x points at the viewer: the right side is far
    contour = _RIGHT_CONTOUR if far_right else _LEFT_CONTOUR
    lines = data.line_bounds[:8] if far_right else data.line_bounds[8:]
    outward = (-1.0 if far_right else 1.0) * rotation[:2, 0]
    candidates = data.candidate_rows
    reach = problem.points(candidates, state.coefficients) @ (rotation[:2].T @ outward)
    for k, (start, end) in zip(contour, lines):
        rows[k] = candidates[start + np.argmax(reach[start:end])]
    return rows


def _alternate(problem, n_iterations, silhouette):
    """Step 1: alternate pose and coefficients from the mean face."""
    rows = problem.data.landmark_rows.copy()
    coefficients = np.zeros(len(problem.cols))
    for _ in range(n_iterations):
        state = problem.state(rows, coefficients)
        if silhouette and problem.turned(state.rotation):
            new_rows = _silhouette_rows(problem, state)
            if not np.array_equal(new_rows, rows):
                rows, problem.reassigned = new_rows, True
                state = problem.state(rows, coefficients)
        coefficients = _coefficients(problem, rows, state.rotation, state.scale, state.translation)
    return problem.state(rows, coefficients)


def _polish(problem, state, silhouette):
    """Steps 2-3: joint refinement; with the silhouette rule, re-assign the contour and
    refine again while that lowers the objective (at most _CONTOUR_ROUNDS times)."""
    state = _refine(problem, state)
    for _ in range(_CONTOUR_ROUNDS):
        if not (silhouette and problem.turned(state.rotation)):
            break
        rows = _silhouette_rows(problem, state)
        if np.array_equal(rows, state.rows):
            break
        problem.reassigned = True
        moved = _refine(problem, _moved(problem, state, rows))
        if moved.cost >= state.cost:
            break
        state = moved
    return state


def _moved(problem, state, rows):
    """The state with other landmark rows, pose and coefficients kept."""
    return state._replace(rows=rows, cost=problem.cost(rows, state.rotation, state.scale,
                                                       state.translation, state.coefficients))


def _rodrigues(omega):
    """exp([omega]x): rotation vector (3,) in radians -> (3, 3)."""
    angle = np.linalg.norm(omega)
    cross = np.array([[0.0, -omega[2], omega[1]], [omega[2], 0.0, -omega[0]], [-omega[1], omega[0], 0.0]])
    if angle < 1e-12:
        return np.eye(3) + cross
    return np.eye(3) + np.sin(angle) / angle * cross + (1 - np.cos(angle)) / angle ** 2 * cross @ cross


def _refine(problem, state):
    """Levenberg-Marquardt on the objective, landmark vertices fixed.

    Parameters: rotation increment w (R <- R exp([w]x)), log s, t (2,), c / ev (p,).
    """
    rows = state.rows
    mean, whitened_basis = problem.data.mean[rows], problem.basis[rows] * problem.ev
    observed, n, p = problem.observed, len(rows), len(problem.ev)
    root = np.sqrt(problem.regularization)

    def evaluate(rotation, scale, translation, whitened):
        points = mean + whitened_basis @ whitened
        fitted = scale * points @ rotation[:2].T + translation
        residual = np.concatenate([(fitted - observed).reshape(-1), root * whitened])
        return residual, points

    rotation, scale, translation = state.rotation, state.scale, state.translation
    whitened = state.coefficients / problem.ev
    residual, points = evaluate(rotation, scale, translation, whitened)
    cost = float(residual @ residual)
    damping = 1e-3
    jacobian = np.zeros((2 * n + p, 6 + p))
    jacobian[0:2 * n:2, 4] = 1.0
    jacobian[1:2 * n:2, 5] = 1.0
    jacobian[2 * n:, 6:] = root * np.eye(p)
    for _ in range(_LM_STEPS):
        plane = rotation[:2]
        # d(r_i . exp([w]x) X)/dw at w = 0 is -r_i^T [X]x = X x r_i.
        jacobian[0:2 * n:2, 0:3] = scale * np.cross(points, plane[0])
        jacobian[1:2 * n:2, 0:3] = scale * np.cross(points, plane[1])
        jacobian[:2 * n, 3] = (scale * points @ plane.T).reshape(-1)
        jacobian[:2 * n, 6:] = (scale * np.einsum("ij,njp->nip", plane, whitened_basis)).reshape(-1, p)
        normal = jacobian.T @ jacobian
        gradient = jacobian.T @ residual
        diagonal = np.diag(normal) + 1e-9 * (np.trace(normal) / len(normal) + 1e-30)
        progress = False
        for _ in range(10):
            step = np.linalg.solve(normal + damping * np.diag(diagonal), -gradient)
            trial = (rotation @ _rodrigues(step[:3]), scale * np.exp(step[3]), translation + step[4:6],
                     whitened + step[6:])
            trial_residual, trial_points = evaluate(*trial)
            trial_cost = float(trial_residual @ trial_residual)
            if trial_cost < cost:
                progress = cost - trial_cost > _LM_TOLERANCE * cost
                rotation, scale, translation, whitened = trial
                residual, points, cost = trial_residual, trial_points, trial_cost
                damping = max(damping * 0.1, 1e-10)
                break
            damping *= 10.0
        if not progress:
            break
    return _State(rows, rotation, scale, translation, whitened * problem.ev, cost)


def fit_landmarks(face_model, landmarks_xy, image_height, n_iterations=DEFAULT_ITERATIONS,
                  shape_count=DEFAULT_SHAPE_COUNT, exp_count=DEFAULT_EXP_COUNT,
                  regularization=DEFAULT_REGULARIZATION, contour="auto") -> FitResult:
    """Fit pose, identity and expression to 68 image landmarks (module doc).

    model: MorphableModel. landmarks_xy (68, 2): image coordinates in px
    (x column, y row; iBUG order). image_height: px (y_model = H - 1 - y).
    n_iterations: pose / coefficient alternations before the joint refinement (>= 1).
    shape_count, exp_count: leading identity / expression components fitted
    (clipped to the model's counts).
    regularization: lambda of the penalty lambda * sum((c / ev) ** 2), px^2.
    contour: "auto", "silhouette" or "fixed": the jaw-contour rule.
    Deterministic. Raises InputError for malformed or degenerate input.
    """
    observed = _check_inputs(landmarks_xy, image_height, n_iterations, shape_count, exp_count,
                             regularization, contour)
    observed[:, 1] = image_height - 1 - observed[:, 1]          # image rows -> placed y (up)
    data = _model_data(face_model)
    problem = _Problem(data, observed, min(shape_count, face_model.n_shape), min(exp_count, face_model.n_exp),
                       float(regularization))

    state = _polish(problem, _alternate(problem, n_iterations, contour != "fixed"), contour != "fixed")
    if contour == "auto" and problem.reassigned:
        other = _polish(problem, _alternate(problem, n_iterations, False), False)
        if other.cost <= state.cost:
            state = other

    points = problem.points(state.rows, state.coefficients)
    fitted = state.scale * points @ state.rotation[:2].T + state.translation
    error = float(np.linalg.norm(fitted - observed, axis=1).mean())
    tz = -state.scale * float((points @ state.rotation[2]).mean())
    pose = np.concatenate([angles_from_rotations(state.rotation), state.translation, [tz, state.scale]])
    full = np.zeros(face_model.n_shape + face_model.n_exp)
    full[problem.cols] = state.coefficients
    return FitResult(pose=pose, shape_params=full[:face_model.n_shape], exp_params=full[face_model.n_shape:],
                     reprojection_error=error, landmark_indices=data.vertex_ids[state.rows])
