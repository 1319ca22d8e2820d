"""Fit a morphable model to a predicted position map, and read the 68 landmarks from the fit.

A network's position map is noisy point by point. Its 3D points at the face
pixels are fitted by the model (docs/prediction.md, "Landmarks"):

    minimise  sum_p |s R X_p(a) + t - P_p|^2 + regularization * |a|^2
    X_p(a) = mean_p + sum_k basis_pk * ev_k * a_k

over a similarity pose (s, R, t: R a rotation of the model's axes with y
flipped to the map's y down) and the identity and expression coefficients a
in units of their standard deviations (so the prior is N(0, 1)). P_p are the
map's points in crop pixels, X_p the model's surface at the same UV pixels
(barycentric in the UV layout's triangles). The data term is in px^2 per
coordinate, so `regularization` reads as a noise variance in px^2 that the
whole face's points share (their errors are correlated, so it is much
larger than any one point's variance). The 68 landmarks are then the fitted
model's landmark vertices, placed by the pose, and the dense face is the
fitted model's surface at every face pixel (`surfaces`): a face of the model,
smooth and with its depth, where the map itself is rippled and flattened
(docs/prediction.md, "The dense face").

Method: alternation from a = 0: the pose by Umeyama's closed form given a,
then a by the regularised linear least squares given the pose (translation
eliminated by centring), `ITERATIONS` times, and a last pose. All sums over
points are taken once, for a batch of maps in one matrix product, so an
iteration costs O(K^2) for K coefficients, not O(points * K).
"""

from typing import NamedTuple

import numpy as np
import scipy.sparse

from prn.rendering.morphable.uv_assets import uv_table
from prn.rendering.util.errors import InputError

POINT_STEP = 4                 # every 4th face pixel of the 256 map (10,828 of the built-in layout's 43,312)
SURFACE_TOLERANCE = 0.01       # px: the most any dense face point may move by the components `surfaces` leaves out
ITERATIONS = 6
REGULARIZATION = 10_000.0      # px^2; chosen on validation faces (docs/prediction.md, "Landmarks")
_Y_DOWN = np.array([1.0, -1.0, 1.0])


class MapFit(NamedTuple):
    """The result of fitting one position map.

    landmarks (68, 3) float64: crop pixels, as the map (x right, y down, z towards the viewer).
    coefficients (K + E,) float64: identity then expression, in units of the model's basis (Shape_Para, Exp_Para).
    scale: pixels per model unit; rotation (3, 3) float64 and translation (3,) float64: model (y flipped) -> map.
    """

    landmarks: np.ndarray
    coefficients: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray


class MapFitter:
    """Fits one morphable model to position maps laid out in its UV map.

    model: the MorphableModel whose UV layout the maps use (the network's
    model: check fingerprints before). face_ind (f,) int: face pixels of the
    size x size map, row-major (UVAssetFolder.face_ind).
    """

    def __init__(self, face_model, face_ind, size=256, regularization=REGULARIZATION, point_step=POINT_STEP,
                 iterations=ITERATIONS):
        if not np.isfinite(regularization) or regularization < 0:
            raise InputError(f"regularization must be a finite number >= 0, got {regularization!r}")
        self.regularization = float(regularization)
        self.iterations = iterations
        self.size = size
        face_ind = np.asarray(face_ind, np.int64)
        table = uv_table(face_model, size)
        face_rows = np.minimum(np.searchsorted(table.pixels, face_ind), len(table.pixels) - 1)
        if not (table.pixels[face_rows] == face_ind).all():
            raise InputError(f"{face_model.path}: face pixels outside the model's UV layout (a map of another model?)")
        self.pixels, rows = face_ind[::point_step], face_rows[::point_step]
        ids, weights = table.vertex_ids[rows].astype(np.int64), table.weights[rows].astype(np.float64)
        self.ev = np.concatenate([face_model.shape_ev, face_model.exp_ev]).astype(np.float64)
        count = len(self.ev)
        mean = face_model.mean.reshape(-1, 3)
        basis = face_model.basis.reshape(-1, 3, count)
        points_mean = np.einsum("pj,pjc->pc", weights, mean[ids].astype(np.float64)) * _Y_DOWN
        points_basis = np.einsum("pj,pjck->pck", weights, basis[ids].astype(np.float64))
        points_basis *= self.ev * _Y_DOWN[:, None]
        self.mean_centroid = points_mean.mean(axis=0)                                   # (3,)
        self.basis_centroid = points_basis.mean(axis=0)                                 # (3, K)
        self.centred_mean = points_mean - self.mean_centroid                            # (n, 3)
        centred_basis = (points_basis - self.basis_centroid).reshape(len(self.pixels), 3 * count)
        flat_basis = centred_basis.reshape(-1, count)                                   # (3n, K)
        # The per-map sums over points read this whole matrix: float32 halves the memory it streams (the sums
        # move by about 1e-7 of their size; the Gram matrix and the rest stay float64).
        self.centred_basis = centred_basis.astype(np.float32)
        self.gram = flat_basis.T @ flat_basis                                           # (K, K)
        self.mean_basis = flat_basis.T @ self.centred_mean.reshape(-1)                  # (K,)
        self.mean_norm = float((self.centred_mean ** 2).sum())
        self.gram_values, self.gram_vectors = np.linalg.eigh(self.gram)
        self.landmark_mean = mean[face_model.landmarks].astype(np.float64) * _Y_DOWN          # (68, 3)
        self.landmark_basis = basis[face_model.landmarks].astype(np.float64) * self.ev * _Y_DOWN[:, None]
        # The dense face: the model at the vertices the face pixels interpolate (float32: about 90 MB for the
        # built-in model), and each face pixel's three vertices among them with their weights.
        used, dense_ids = np.unique(table.vertex_ids[face_rows], return_inverse=True)
        # Face pixel p = sum_j weight_pj * vertex id_pj, as one sparse (f, u) matrix: 6x faster than a gather.
        pixel_rows = np.repeat(np.arange(len(face_rows)), 3)
        self.dense_matrix = scipy.sparse.csr_matrix(
            (table.weights[face_rows].astype(np.float32).ravel(), (pixel_rows, dense_ids.ravel())),
            shape=(len(face_rows), len(used)))
        self.vertex_mean = mean[used] * _Y_DOWN.astype(np.float32)                      # (u, 3)
        # One row per component, ordered by how far one standard deviation of it moves a point (its longest
        # vertex offset times its ev), so that a face's small components are a tail `surfaces` can leave out.
        vertex_basis = basis[used] * _Y_DOWN[:, None].astype(np.float32)                 # (u, 3, K)
        reach = np.linalg.norm(vertex_basis, axis=1).max(axis=0).astype(np.float64)      # (K,) per model unit
        self.surface_order = np.argsort(-reach * self.ev, kind="stable")
        self.surface_reach = reach[self.surface_order]
        self.surface_basis = np.ascontiguousarray(vertex_basis.transpose(2, 0, 1)[self.surface_order]
                                                  .reshape(count, -1))                   # (K, 3u) float32

    def fit(self, posmap) -> MapFit:
        """posmap (size, size, 3) float, crop pixels -> MapFit. InputError if its face points are not finite."""
        return self.fit_many(np.asarray(posmap)[None])[0]

    def fit_many(self, posmaps) -> list:
        """posmaps (B, size, size, 3) float, crop pixels -> [MapFit] (the sums over points of all maps in one
        matrix product). InputError if their face points are not finite."""
        posmaps = np.asarray(posmaps)
        if posmaps.ndim != 4 or posmaps.shape[1:] != (self.size, self.size, 3):
            raise InputError(f"position maps must be (B, {self.size}, {self.size}, 3), got {posmaps.shape}")
        points = posmaps.reshape(len(posmaps), -1, 3)[:, self.pixels].astype(np.float64)
        if not np.isfinite(points).all():
            raise InputError("the position map's face points are not finite")
        centroids = points.mean(axis=1)                                                  # (B, 3)
        centred = (points - centroids[:, None]).transpose(1, 0, 2).reshape(len(self.pixels), -1)
        count = len(self.ev)
        # basis_points[b, k, c, d] = sum_p basis[p, c, k] * centred[b, p, d]; mean_points[b, c, d] likewise.
        basis_points = (self.centred_basis.T @ centred.astype(np.float32)).astype(np.float64)
        basis_points = basis_points.reshape(3, count, -1, 3).transpose(2, 1, 0, 3)
        mean_points = (self.centred_mean.T @ centred).reshape(3, -1, 3).transpose(1, 0, 2)
        return [self._fit(*moments) for moments in zip(centroids, basis_points, mean_points)]

    def landmarks(self, posmaps) -> np.ndarray:
        """posmaps (B, size, size, 3) -> (B, 68, 3) float64 fitted landmarks, crop pixels."""
        if not len(posmaps):
            return np.zeros((0, 68, 3))
        return np.stack([fitted.landmarks for fitted in self.fit_many(posmaps)])

    def surfaces(self, fits, tolerance=SURFACE_TOLERANCE) -> np.ndarray:
        """[MapFit] -> (B, f, 3) float32: each fitted model's surface at the face pixels (face_ind order), placed
        by its pose, crop pixels as the maps.

        The components whose summed reach (|coefficient| x the longest offset
        they give any vertex x the pose's scale) is at most `tolerance` pixels
        are left out: no point moves further than that (0: every component).
        """
        out = np.empty((len(fits), self.dense_matrix.shape[0], 3), np.float32)
        for face, fitted in enumerate(fits):
            coefficients = fitted.coefficients[self.surface_order]
            reach = np.abs(coefficients) * self.surface_reach * fitted.scale
            tail = np.cumsum(reach[::-1])[::-1]                     # tail[k]: reach of components k and after
            used = int(np.searchsorted(-tail, -tolerance, side="left")) if tolerance > 0 else len(tail)
            shape = (coefficients[:used].astype(np.float32) @ self.surface_basis[:used]).reshape(-1, 3)
            shape += self.vertex_mean
            placed = shape @ (fitted.scale * fitted.rotation.T).astype(np.float32) \
                + fitted.translation.astype(np.float32)
            out[face] = self.dense_matrix @ placed
        return out

    def _fit(self, centroid, basis_points, mean_points) -> MapFit:
        """The alternation for one map, from its centroid (3,) and its sums with the basis (K, 3, 3) and the
        mean (3, 3)."""
        standard = np.zeros(len(self.ev))
        scale, rotation = self._pose(standard, basis_points, mean_points)
        if not (np.isfinite(scale) and scale > 0):
            raise InputError("the position map's face points have no extent: there is no face to fit "
                             "(a network that is not trained?)")
        for _ in range(self.iterations):
            target = np.einsum("kcd,dc->k", basis_points, rotation) / scale - self.mean_basis
            # (gram + mu I)^-1 target through gram's eigenvectors: O(K^2) for any mu.
            damping = self.regularization / scale ** 2
            standard = self.gram_vectors @ ((self.gram_vectors.T @ target) / (self.gram_values + damping))
            scale, rotation = self._pose(standard, basis_points, mean_points)
        translation = centroid - scale * rotation @ (self.mean_centroid + self.basis_centroid @ standard)
        landmarks = self.landmark_mean + self.landmark_basis @ standard
        return MapFit(scale * landmarks @ rotation.T + translation, standard * self.ev, scale, rotation, translation)

    def _pose(self, standard, basis_points, mean_points):
        """(scale, rotation (3, 3)) of the best similarity from the model with coefficients `standard` to the
        map's points (Umeyama: the rotation from the SVD of their cross-covariance, no reflection)."""
        cross = mean_points + np.einsum("k,kcd->cd", standard, basis_points)      # (model c, map d)
        spread = self.mean_norm + 2 * standard @ self.mean_basis + standard @ self.gram @ standard
        u, singular, vt = np.linalg.svd(cross.T)
        signs = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
        return float((singular * signs).sum() / spread), (u * signs) @ vt
