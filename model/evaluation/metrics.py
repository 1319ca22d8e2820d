"""The AFLW2000-3D benchmark's numbers from landmark arrays (docs/formats.md section 7); numpy only.

Units: every error here is in percent of its normaliser (NME 3.5 means 3.5 %),
thresholds too; AUC and failure rate are fractions in [0, 1].

* NME of one sample: mean over its points of the Euclidean distance between
  prediction and truth, in (x, y) for 2D or (x, y, z) for 3D, where each
  side's z is taken relative to its own mean z (the z origin is arbitrary),
  divided by a normaliser:
  `bbox` = sqrt(w * h) of the truth's (x, y) bounding box of the 68 points;
  `iod` = distance between the outer eye corners 36 and 45 of the truth, in
  (x, y) for 2D and in (x, y, z) for 3D (the normaliser has the error's
  dimensions, and a z difference does not depend on the z origin).
* Yaw bins by |yaw| of the ground-truth pose in degrees: [0, 30], (30, 60],
  (60, 90]; as in the usual evaluation code, |yaw| above 90 joins the last bin.
* `balanced`: the mean of the bin means over the bins that hold samples; an
  empty bin's mean is NaN and it is left out of `balanced` (the bin counts
  say when that happened). `all`: the plain mean over all samples.
* Table 2: for p = 10 %, 20 %, ..., 100 %, the sorted errors' value at
  index ceil(p * N) - 1 (0-based), i.e. the smallest error that at least a
  fraction p of the samples do not exceed; 100 % is the worst sample.
* CED(t): the fraction of samples with error <= t. AUC at T: the area under
  the CED from 0 to T divided by T, computed exactly: each sample contributes
  max(0, T - e) / T, so AUC = mean(clip(1 - e / T, 0, 1)).
* Failure rate at T: the fraction of samples with error > T.
"""

import numpy as np

from prn.rendering.geometry.pose import rotation_matrices

AUC_THRESHOLDS = (7.0, 10.0)       # NME percent
FAILURE_THRESHOLD = 10.0           # NME percent
NME_KEYS = ("nme2d_bbox", "nme3d_bbox", "nme2d_iod", "nme3d_iod")
YAW_BINS = ("0-30", "30-60", "60-90")
YAW_EDGES_DEG = (30.0, 60.0)          # upper edges of the first two bins, inclusive
TABLE2_POINTS = tuple(range(10, 101, 10))   # percent of the samples
EYE_CORNERS = (36, 45)                # outer eye corners, iBUG order


def _points(array, name):
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] < 2:
        raise ValueError(f"{name} has shape {array.shape}, expected (N, points, 2 or 3)")
    return array


def bbox_size(truth) -> np.ndarray:
    """truth (N, 68, >=2) -> (N,) sqrt(w * h) of each sample's (x, y) bounding box, same units."""
    truth = _points(truth, "truth")
    extent = truth[..., :2].max(axis=1) - truth[..., :2].min(axis=1)
    return np.sqrt(extent[:, 0] * extent[:, 1])


def interocular(truth, dims) -> np.ndarray:
    """truth (N, 68, 3) -> (N,) distance between landmarks 36 and 45 over the first `dims` (2 or 3) axes."""
    truth = _points(truth, "truth")
    right, left = EYE_CORNERS
    return np.linalg.norm(truth[:, right, :dims] - truth[:, left, :dims], axis=-1)


def normaliser(truth, kind, dims) -> np.ndarray:
    """(N,) `bbox` or `iod` normaliser of truth (N, 68, 3) for a `dims`-D error (see the module doc)."""
    if kind == "bbox":
        return bbox_size(truth)
    if kind == "iod":
        return interocular(truth, dims)
    raise ValueError(f"unknown normaliser {kind!r}, expected bbox or iod")


def point_errors(predicted, truth, dims) -> np.ndarray:
    """(N, n) Euclidean distances of predicted vs truth (N, n, 3), in 2D (x, y) or 3D after the mean-z offset."""
    predicted, truth = _points(predicted, "predicted"), _points(truth, "truth")
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted {predicted.shape} and truth {truth.shape} differ")
    difference = predicted[..., :dims] - truth[..., :dims]
    if dims == 3:
        difference[..., 2] -= difference[..., 2].mean(axis=1, keepdims=True)
    elif dims != 2:
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    return np.linalg.norm(difference, axis=-1)


def nme(predicted, truth, dims=2, kind="bbox", scale=None) -> np.ndarray:
    """(N,) per-sample NME in percent of predicted vs truth (N, n, 3).

    The normaliser comes from truth's 68 landmarks (`kind` bbox or iod), or is
    given as `scale` (N,) when the points are not the 68 landmarks (dense NME).
    """
    if scale is None:
        scale = normaliser(truth, kind, dims)
    return 100.0 * point_errors(predicted, truth, dims).mean(axis=1) / np.asarray(scale, dtype=np.float64)


def yaw_bin(yaw_deg) -> np.ndarray:
    """(N,) int bin index 0, 1, 2 of YAW_BINS for yaw angles (N,) in degrees (sign ignored)."""
    magnitude = np.abs(np.asarray(yaw_deg, dtype=np.float64))
    return np.searchsorted(YAW_EDGES_DEG, magnitude, side="left")


def bin_counts(yaw_deg) -> dict:
    """{bin name: number of samples} of yaw angles (N,) in degrees."""
    counts = np.bincount(yaw_bin(yaw_deg), minlength=len(YAW_BINS))
    return {name: int(count) for name, count in zip(YAW_BINS, counts)}


def by_yaw(errors, yaw_deg) -> dict:
    """{"0-30", "30-60", "60-90", "balanced", "all"}: mean errors (N,) per |yaw| bin, their mean, the mean.

    An empty bin gives NaN and is left out of `balanced`; no samples at all give NaN everywhere.
    """
    errors = np.asarray(errors, dtype=np.float64)
    bins = yaw_bin(yaw_deg)
    if errors.shape != bins.shape:
        raise ValueError(f"errors {errors.shape} and yaw {bins.shape} differ")
    means = [float(errors[bins == index].mean()) if (bins == index).any() else float("nan")
             for index in range(len(YAW_BINS))]
    filled = [mean for mean in means if not np.isnan(mean)]
    summary = dict(zip(YAW_BINS, means))
    summary["balanced"] = float(np.mean(filled)) if filled else float("nan")
    summary["all"] = float(errors.mean()) if errors.size else float("nan")
    return summary


def table2(errors) -> list:
    """The sorted errors (N,) at 10 %, 20 %, ..., 100 % of the samples: index ceil(p * N) - 1 each."""
    ordered = np.sort(np.asarray(errors, dtype=np.float64))
    if ordered.size == 0:
        return [float("nan")] * len(TABLE2_POINTS)
    # ceil(p * N) in integers, p = percent / 100, so that no rounding moves an index
    return [float(ordered[(percent * ordered.size + 99) // 100 - 1]) for percent in TABLE2_POINTS]


def ced(errors, thresholds) -> np.ndarray:
    """Cumulative error distribution: for each threshold (T,) the fraction of errors (N,) <= it."""
    ordered = np.sort(np.asarray(errors, dtype=np.float64))
    return np.searchsorted(ordered, np.asarray(thresholds, dtype=np.float64), side="right") / max(ordered.size, 1)


def auc(errors, threshold) -> float:
    """Area under the CED of errors (N,) from 0 to `threshold`, divided by it: in [0, 1]."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        return float("nan")
    return float(np.clip(1.0 - errors / threshold, 0.0, 1.0).mean())


def failure_rate(errors, threshold) -> float:
    """Fraction of errors (N,) above `threshold`."""
    errors = np.asarray(errors, dtype=np.float64)
    return float((errors > threshold).mean()) if errors.size else float("nan")


def angle_errors_deg(predicted_rad, truth_rad) -> np.ndarray:
    """|predicted - truth| (N, 3) in degrees, each difference wrapped into [-180, 180)."""
    difference = np.degrees(np.asarray(predicted_rad, np.float64) - np.asarray(truth_rad, np.float64))
    return np.abs((difference + 180.0) % 360.0 - 180.0)


def rotation_errors_deg(predicted_rad, truth_rad) -> np.ndarray:
    """(N,) angle in degrees of the rotation between predicted and truth poses (N, 3) [pitch, yaw, roll] radians."""
    relative = np.einsum("nji,njk->nik", rotation_matrices(np.atleast_2d(predicted_rad)),
                         rotation_matrices(np.atleast_2d(truth_rad)))
    cosine = (np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
