"""Test-time views: the network run on turned and mirrored copies of each crop, its maps brought back and averaged.

A view is a similarity about the crop's centre (scale, in-plane angle) and
optionally a left-right mirror after it. The network's map of a view is in
that view's pixels; it is brought back to the crop's (x, y through the
inverse similarity, z divided by the scale, as training's augmentation moves
the target the other way) and, for a mirrored view, relabelled with the UV
mirror map (`MirrorMap`), so that each UV pixel again names the same point
of the face. The mean of the views' maps is the prediction. The view sets
were chosen on synthetic validation faces (docs/prediction.md, "Views").
"""

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from prn.rendering.geometry.crop import CROP_CENTER
from prn.rendering.geometry.crop import CROP_SIZE as CROP
from prn.rendering.util.errors import InputError

# (scale, angle in degrees counter-clockwise, mirrored) per view; the count is what `views` selects.
TURNED = ((1.0, 12.0, False), (1.0, -12.0, True), (1.0, -12.0, False), (1.0, 12.0, True))
VIEW_SETS = {
    1: ((1.0, 0.0, False),),
    2: TURNED[:2],
    4: TURNED,
    8: TURNED + ((0.9, 0.0, False), (0.9, 0.0, True), (1.1, 0.0, False), (1.1, 0.0, True)),
}
DEFAULT_VIEWS = 4

# The 68-point scheme's left-right pairs: landmark i of a face is landmark MIRRORED_LANDMARKS[i] of its mirror image.
MIRRORED_LANDMARKS = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])


class MirrorMap:
    """Where each pixel of the UV map lands when the face is mirrored left to right.

    Built from the UV assets' mean face (`canonical`, any frame): the
    symmetry plane is the one the 68 landmarks' mirror pairs straddle (its
    normal the mean direction from a landmark to its mirror, through their
    mean midpoint). Each face pixel's 3D point is reflected in it, matched to
    the nearest face point and refined to a sub-pixel UV position by the
    map's local linear fit there. Each landmark pixel (some lie off the face
    mask) maps to its mirror landmark's pixel. `columns`, `rows` (S, S)
    float32: the UV position of each pixel's mirror; `defined` (S, S) bool:
    the pixels that have one (the others map to themselves).
    """

    def __init__(self, uv):
        size = uv.size
        grid = np.full((size * size, 3), np.nan)
        grid[uv.face_ind] = uv.canonical
        grid = grid.reshape(size, size, 3)
        try:
            normal, offset = _symmetry_plane(grid[uv.kpt[1], uv.kpt[0]])
        except ValueError as error:
            raise InputError(f"{uv.folder}: {error}, so mirrored views are impossible (use --views 1)") from None
        reflected = uv.canonical - 2 * (uv.canonical @ normal - offset)[:, None] * normal
        rows, columns = np.divmod(uv.face_ind[cKDTree(uv.canonical).query(reflected)[1]], size)
        step = _subpixel_step(grid, rows, columns, reflected)
        self.columns, self.rows = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
        face_rows, face_columns = np.divmod(uv.face_ind, size)
        self.columns[face_rows, face_columns] = columns + step[:, 0]
        self.rows[face_rows, face_columns] = rows + step[:, 1]
        self.columns[uv.kpt[1], uv.kpt[0]] = uv.kpt[0, MIRRORED_LANDMARKS]
        self.rows[uv.kpt[1], uv.kpt[0]] = uv.kpt[1, MIRRORED_LANDMARKS]
        self.defined = np.zeros((size, size), bool)
        self.defined[face_rows, face_columns] = True
        self.defined[uv.kpt[1], uv.kpt[0]] = True

    def relabel(self, posmap) -> np.ndarray:
        """posmap (S, S, 3) float32 -> at each pixel, posmap's value at that pixel's mirror (bilinear)."""
        return cv2.remap(posmap, self.columns, self.rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _symmetry_plane(landmarks):
    """landmarks (68, 3), NaN where unknown -> (unit normal (3,), offset): the plane n . p = offset."""
    pairs = np.isfinite(landmarks).all(axis=1) & np.isfinite(landmarks[MIRRORED_LANDMARKS]).all(axis=1)
    apart = landmarks[MIRRORED_LANDMARKS] - landmarks
    apart[~pairs] = 0
    pairs &= np.linalg.norm(apart, axis=1) > 0          # a midline landmark is its own mirror: no direction
    if not pairs.any():
        raise ValueError("no two mirrored landmarks on the UV face mask: the symmetry plane is undefined")
    # Pair (i, j) and (j, i) point opposite ways: orient them all along the first pair's direction.
    apart = apart[pairs]
    apart *= np.sign(apart @ apart[0])[:, None]
    normal = apart.mean(axis=0)
    normal /= np.linalg.norm(normal)
    midpoints = (landmarks[pairs] + landmarks[MIRRORED_LANDMARKS][pairs]) / 2
    return normal, float(np.mean(midpoints @ normal))


def _subpixel_step(grid, rows, columns, targets):
    """(n, 2) (du, dv), each within +-1 pixel, that moves grid's point at (rows, columns) closest to targets (n, 3).

    Least squares on the map's finite differences there; 0 where they are undefined (the mask's edge).
    """
    size = grid.shape[0]
    right, left = np.minimum(columns + 1, size - 1), np.maximum(columns - 1, 0)
    down, up = np.minimum(rows + 1, size - 1), np.maximum(rows - 1, 0)
    along_u = (grid[rows, right] - grid[rows, left]) / np.maximum(right - left, 1)[:, None]
    along_v = (grid[down, columns] - grid[up, columns]) / np.maximum(down - up, 1)[:, None]
    jacobian = np.stack([along_u, along_v], axis=2)                      # (n, 3, 2)
    normal = np.einsum("nki,nkj->nij", jacobian, jacobian)
    valid = np.isfinite(jacobian).all(axis=(1, 2))
    valid[valid] = np.abs(np.linalg.det(normal[valid])) > 1e-9
    right_side = np.einsum("nki,nk->ni", jacobian[valid], targets[valid] - grid[rows[valid], columns[valid]])
    step = np.zeros((len(rows), 2))
    step[valid] = np.linalg.solve(normal[valid], right_side[..., None])[..., 0]
    return np.clip(step, -1.0, 1.0)


@dataclass(frozen=True)
class Views:
    """A set of views, each (scale, angle in degrees counter-clockwise, mirrored), with the UV mirror map of the
    network's model (None when no view is mirrored)."""

    views: tuple
    mirror: MirrorMap | None

    @classmethod
    def of(cls, count, uv) -> "Views":
        """The set of `count` views (VIEW_SETS: 1, 2, 4 or 8; ValueError otherwise) for the UVAssetFolder uv."""
        if count not in VIEW_SETS:
            raise ValueError(f"views must be one of {', '.join(map(str, VIEW_SETS))}, got {count!r}")
        return cls.chosen(VIEW_SETS[count], uv)

    @classmethod
    def chosen(cls, views, uv) -> "Views":
        """Any views ((scale, angle, mirrored), ...), e.g. to compare sets (benchmarks/bench_views.py)."""
        views = tuple((float(scale), float(angle), bool(mirrored)) for scale, angle, mirrored in views)
        return cls(views, MirrorMap(uv) if any(mirrored for _, _, mirrored in views) else None)

    def predict(self, network, config, crops, device="cpu", batch_size=32) -> np.ndarray:
        """crops (B, 256, 256, 3) uint8 RGB -> the views' mean position map (B, 256, 256, 3) float32, 256-crop pixels.

        One view (1, 0, not mirrored) is `predict_posmaps` itself. A pixel
        without a mirror takes the mean of the unmirrored views only.
        """
        from prn.model.inference import predict_posmaps  # torch loads only when a network runs

        crops = np.asarray(crops)
        if self.views == VIEW_SETS[1] or not len(crops):
            return predict_posmaps(network, config, crops, device, batch_size)
        total = np.zeros((len(crops), CROP, CROP, 3), np.float32)
        weight = np.zeros((CROP, CROP), np.float32)
        to_views = [view_transform(scale, angle, mirrored) for scale, angle, mirrored in self.views]
        # Every view of every crop in one call: the network runs them in full batches.
        viewed = np.stack([cv2.warpAffine(crop, to_view, (CROP, CROP), flags=cv2.INTER_LINEAR)
                           for to_view in to_views for crop in crops])
        posmaps = predict_posmaps(network, config, viewed, device, batch_size).reshape(len(self.views), len(crops),
                                                                                       CROP, CROP, 3)
        for (scale, _, mirrored), to_view, view_maps in zip(self.views, to_views, posmaps):
            back = cv2.invertAffineTransform(to_view)
            # x, y back through the view's transform, z divided by its scale: one 3 x 4 matrix for cv2.transform.
            to_crop = np.array([[*back[0, :2], 0, back[0, 2]], [*back[1, :2], 0, back[1, 2]], [0, 0, 1 / scale, 0]])
            mask = self.mirror.defined.view(np.uint8) if mirrored else None
            for total_map, posmap in zip(total, view_maps):
                if mirrored:
                    posmap = self.mirror.relabel(posmap)
                cv2.add(total_map, cv2.transform(posmap, to_crop), dst=total_map, mask=mask)
            weight += self.mirror.defined if mirrored else 1
        total *= (1 / np.maximum(weight, 1))[..., None]
        return total


def view_transform(scale, angle, mirrored) -> np.ndarray:
    """(2, 3) float64: crop pixels -> view pixels. Scaled and turned (degrees, counter-clockwise) about the
    crop's centre, then, when mirrored, column c becomes column 255 - c."""
    centre = CROP_CENTER
    turn = cv2.getRotationMatrix2D((centre, centre), angle, scale)
    if mirrored:
        turn = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ turn + [[0, 0, 2 * centre], [0, 0, 0]]
    return turn
