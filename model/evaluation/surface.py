"""Measures of a dense face's shape that 2D NMEs do not see: its surface normals and the depth of its nose.

Both faces are the points of one UV layout at face_ind (f, 3), crop or image
pixels, with the layout's triangles (docs/formats.md section 7, "The dense
face's shape"):

* normal angle: the mean over the face points of the angle, in degrees,
  between the predicted and the true surface normal at that point (each
  vertex normal the area-weighted sum of its triangles' normals). It sees a
  rippled, flattened or wrongly turned surface; 0 for the true face.
* nose depth: how far the nose tip (landmark 30) stands out of the plane
  through the outer eye corners (36, 45) and the middle of the mouth corners
  (48, 54), over the distance between the eye corners; the ratio of the
  prediction's to the truth's is 1 for a nose as deep as the true one.
  These five points are the dense face's points at the UV landmark pixels
  (the nearest face pixel where a landmark pixel lies outside the face).

The baseline is the layout's mean face (`canonical`) placed on each true face
by the least-squares 3D similarity: the best a generic face can do.
"""

import numpy as np
import scipy.sparse

from prn.rendering.geometry.head_pose import fit_similarity

NOSE_TIP, EYE_CORNERS, MOUTH_CORNERS = 30, (36, 45), (48, 54)
_NOSE_POINTS = (NOSE_TIP, *EYE_CORNERS, *MOUTH_CORNERS)


class SurfaceMeasure:
    """Normal angles and nose depths of dense faces laid out in one UV layout.

    face_ind (f,) row-major face pixels of the size x size map; triangles (t, 3)
    indices into face_ind; kpt (2, 68) landmark pixel column, row.
    """

    def __init__(self, face_ind, triangles, kpt, size):
        face_ind, triangles = np.asarray(face_ind, np.int64), np.asarray(triangles, np.int64)
        count = len(face_ind)
        rows = triangles.reshape(-1)
        # vertex x triangle incidence: a vertex normal is the sum of its triangles' (area-weighted) normals
        self.incidence = scipy.sparse.csr_matrix(
            (np.ones(len(rows)), (rows, np.repeat(np.arange(len(triangles)), 3))), shape=(count, len(triangles)))
        self.triangles = triangles
        face_pixels = np.stack(np.divmod(face_ind, size), axis=1)                      # (f, 2) row, column
        wanted = np.asarray(kpt)[::-1, list(_NOSE_POINTS)].T                           # (5, 2) row, column
        distances = ((face_pixels[None] - wanted[:, None]) ** 2).sum(axis=-1)
        self.nose_rows = distances.argmin(axis=1)                                     # (5,) into face_ind

    def normals(self, points) -> np.ndarray:
        """points (B, f, 3) -> (B, f, 3) float64 unit vertex normals (0 where a point has no triangle)."""
        points = np.asarray(points, np.float64)
        a, b, c = (points[:, self.triangles[:, k]] for k in range(3))
        faces = np.cross(b - a, c - a)                                                # (B, t, 3)
        summed = (self.incidence @ faces.transpose(1, 0, 2).reshape(len(self.triangles), -1))
        summed = summed.reshape(-1, len(points), 3).transpose(1, 0, 2)
        length = np.linalg.norm(summed, axis=-1, keepdims=True)
        return np.divide(summed, length, out=np.zeros_like(summed), where=length > 0)

    def normal_angle(self, predicted, truth) -> np.ndarray:
        """predicted, truth (B, f, 3) -> (B,) mean angle between their normals, degrees, over the points where
        both have one."""
        first, second = self.normals(predicted), self.normals(truth)
        cosine = np.clip((first * second).sum(axis=-1), -1.0, 1.0)
        valid = (np.abs(first).sum(axis=-1) > 0) & (np.abs(second).sum(axis=-1) > 0)
        angles = np.where(valid, np.degrees(np.arccos(cosine)), 0.0)
        return angles.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)

    def nose_depth(self, points) -> np.ndarray:
        """points (B, f, 3) -> (B,) the nose tip's distance from the eye-mouth plane over the eye corners'
        distance (NaN when the three points of the plane are in a line)."""
        tip, right, left, mouth_right, mouth_left = np.moveaxis(
            np.asarray(points, np.float64)[:, self.nose_rows], 1, 0)
        eyes = left - right
        normal = np.cross(eyes, (mouth_right + mouth_left) / 2 - right)
        length = np.linalg.norm(normal, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            depth = np.abs(((tip - right) * normal).sum(axis=-1)) / length
            return depth / np.linalg.norm(eyes, axis=-1)

    def nose_depth_ratio(self, predicted, truth) -> np.ndarray:
        """(B,) the predicted faces' nose depth over the true faces'."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.nose_depth(predicted) / self.nose_depth(truth)

    def scores(self, predicted, truth) -> dict:
        """{"normal_angle": (B,) degrees, "nose_depth_ratio": (B,)} of predicted against true dense faces."""
        return {"normal_angle": self.normal_angle(predicted, truth),
                "nose_depth_ratio": self.nose_depth_ratio(predicted, truth)}


def placed_mean_faces(canonical, truth) -> np.ndarray:
    """canonical (f, 3) mean face, truth (B, f, 3) -> (B, f, 3) the mean face placed on each true face by the
    least-squares 3D similarity."""
    placed = []
    for face in np.asarray(truth, np.float64):
        rotation, scale, shift = fit_similarity(canonical, face)
        placed.append(scale * np.asarray(canonical, np.float64) @ rotation.T + shift)
    return np.stack(placed) if placed else np.zeros((0, *np.shape(canonical)))
