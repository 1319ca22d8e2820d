"""The AFLW2000-3D metric functions (prn.model.evaluation.metrics) on hand-computed cases."""

import numpy as np
import pytest
import scipy.io
from conftest import real_path

from prn.model.evaluation import metrics as benchmark


def face(width=4.0, height=9.0):
    """(1, 68, 3) truth: points spread over a width x height box, z = 0; eye corners 36 at (0, 0), 45 at (3, 4)."""
    rng = np.random.default_rng(0)
    points = np.zeros((1, 68, 3))
    points[0, :, 0] = rng.uniform(0, width, 68)
    points[0, :, 1] = rng.uniform(0, height, 68)
    points[0, 0, :2], points[0, 1, :2] = (0, 0), (width, height)      # the box corners
    points[0, 36, :2], points[0, 45, :2] = (0, 0), (3, 4)
    return points


def test_normalisers():
    truth = face()
    assert benchmark.bbox_size(truth) == pytest.approx([6.0], abs=1e-12)          # sqrt(4 * 9)
    assert benchmark.interocular(truth, 2) == pytest.approx([5.0], abs=1e-12)     # (3, 4)
    truth[0, 45, 2] = 12.0
    assert benchmark.interocular(truth, 3) == pytest.approx([13.0], abs=1e-12)    # (3, 4, 12)
    assert benchmark.interocular(truth, 2) == pytest.approx([5.0], abs=1e-12)


def test_nme_2d_bbox_and_iod_by_hand():
    truth = face()
    predicted = truth.copy()
    predicted[0, 10, :2] += (3.0, 4.0)                      # one point off by 5, z error ignored in 2D
    predicted[0, 20, 2] += 100.0
    assert benchmark.nme(predicted, truth, 2, "bbox") == pytest.approx([100 * 5 / 68 / 6], abs=1e-6)
    assert benchmark.nme(predicted, truth, 2, "iod") == pytest.approx([100 * 5 / 68 / 5], abs=1e-6)
    # every point off by (3, 4): NME = 5 / 6
    shifted = truth + [3.0, 4.0, 0.0]
    assert benchmark.nme(shifted, truth, 2, "bbox") == pytest.approx([100 * 5 / 6], abs=1e-6)


def test_nme_2d_bbox_per_sample_of_a_batch():
    """(N,) per sample, each normalised by its own truth's box: the NME training validates with too."""
    rng = np.random.default_rng(1)
    truth = rng.uniform(0, 100, (3, 68, 3))
    shifted = truth + [3.0, 0.0, 50.0]
    extent = truth[..., :2].max(axis=1) - truth[..., :2].min(axis=1)
    expected = 100 * 3.0 / np.sqrt(extent[:, 0] * extent[:, 1])
    np.testing.assert_allclose(benchmark.nme(shifted, truth, 2, "bbox"), expected, rtol=1e-12)
    np.testing.assert_allclose(benchmark.nme(truth.astype(np.float32), truth, 2, "bbox"), 0.0, atol=1e-5)


def test_nme_3d_removes_the_mean_z_offset():
    truth = face()
    truth[0, :, 2] = np.linspace(-20, 20, 68)
    offset = truth + [0.0, 0.0, 1234.5]
    for kind in ("bbox", "iod"):
        assert benchmark.nme(offset, truth, 3, kind) == pytest.approx([0.0], abs=1e-9)
    # one point 68 deeper: after removing the mean offset (1) it is 67 off, the other 67 points 1 each
    predicted = truth.copy()
    predicted[0, 5, 2] += 68.0
    expected_mean = (67 + 67 * 1) / 68
    assert benchmark.nme(predicted, truth, 3, "bbox") == pytest.approx([100 * expected_mean / 6], abs=1e-6)
    iod_3d = np.linalg.norm(truth[0, 36] - truth[0, 45])
    assert benchmark.nme(predicted, truth, 3, "iod") == pytest.approx([100 * expected_mean / iod_3d], abs=1e-6)
    # a given scale replaces the landmark normaliser (dense NME)
    assert benchmark.nme(predicted, truth, 3, scale=[2.0]) == pytest.approx([100 * expected_mean / 2], abs=1e-6)


def test_yaw_bins_at_the_exact_edges():
    yaw = [0, 29.9, 30, 30.001, 60, 60.001, 90, -30, -60, -60.5, 95]
    assert benchmark.yaw_bin(yaw).tolist() == [0, 0, 0, 1, 1, 2, 2, 0, 1, 2, 2]
    assert benchmark.bin_counts(yaw) == {"0-30": 4, "30-60": 3, "60-90": 4}


def test_balanced_and_all():
    summary = benchmark.by_yaw([1, 2, 3, 4, 10], [0, -10, 45, 70, 80])
    assert summary["0-30"] == pytest.approx(1.5, abs=1e-6)
    assert summary["30-60"] == pytest.approx(3.0, abs=1e-6)
    assert summary["60-90"] == pytest.approx(7.0, abs=1e-6)
    assert summary["balanced"] == pytest.approx((1.5 + 3 + 7) / 3, abs=1e-6)
    assert summary["all"] == pytest.approx(4.0, abs=1e-6)


def test_an_empty_bin_is_nan_and_left_out_of_balanced():
    summary = benchmark.by_yaw([1, 2, 6], [0, 10, 70])
    assert np.isnan(summary["30-60"])
    assert summary["balanced"] == pytest.approx((1.5 + 6) / 2, abs=1e-6)
    assert summary["all"] == pytest.approx(3.0, abs=1e-6)


def test_table2_takes_index_ceil_p_n_minus_one():
    assert benchmark.table2([4, 1, 3, 2]) == pytest.approx([1, 1, 2, 2, 2, 3, 3, 4, 4, 4], abs=1e-6)
    assert benchmark.table2(np.arange(10, 0, -1)) == pytest.approx(list(range(1, 11)), abs=1e-6)
    assert benchmark.table2([7.5]) == pytest.approx([7.5] * 10, abs=1e-6)


def test_ced_auc_and_failure_rate():
    errors = [0.0, 3.5, 7.0, 14.0]
    assert benchmark.ced(errors, [0, 3.5, 5, 7, 20]) == pytest.approx([0.25, 0.5, 0.5, 0.75, 1.0], abs=1e-6)
    # area of max(0, 1 - e / T) per sample: T = 7 -> 1, 0.5, 0, 0; T = 10 -> 1, 0.65, 0.3, 0
    assert benchmark.auc(errors, 7) == pytest.approx(0.375, abs=1e-6)
    assert benchmark.auc(errors, 10) == pytest.approx(1.95 / 4, abs=1e-6)
    grid = np.linspace(0, 10, 100001)
    assert benchmark.auc(errors, 10) == pytest.approx(np.trapezoid(benchmark.ced(errors, grid), grid) / 10, abs=1e-4)
    assert benchmark.failure_rate([0.0, 3.5, 10.0, 14.0], 10) == pytest.approx(0.25, abs=1e-6)   # 10 is no failure


def test_angle_errors_wrap_and_rotation_errors():
    predicted = np.radians([[179.0, 10.0, 0.0]])
    truth = np.radians([[-179.0, 12.0, -3.0]])
    assert benchmark.angle_errors_deg(predicted, truth)[0] == pytest.approx([2.0, 2.0, 3.0], abs=1e-6)
    assert benchmark.rotation_errors_deg(np.radians([[0, 10, 0]]), np.zeros((1, 3))) == pytest.approx([10], abs=1e-6)


def test_metric_code_on_real_aflw2000_pt3d_68():
    folder = real_path("AFLW2000")
    samples = [scipy.io.loadmat(path) for path in sorted(folder.glob("*.mat"))]
    truth = np.stack([sample["pt3d_68"].T for sample in samples]).astype(np.float64)
    yaw = np.degrees([sample["Pose_Para"][0, 1] for sample in samples])
    assert truth.shape == (len(samples), 68, 3)
    for kind in ("bbox", "iod"):
        for dims in (2, 3):
            assert benchmark.nme(truth, truth, dims, kind) == pytest.approx(np.zeros(len(truth)), abs=1e-9)
            assert (benchmark.normaliser(truth, kind, dims) > 0).all()
    moved = truth + [0.0, 0.0, 55.0]
    assert benchmark.nme(moved, truth, 3, "bbox") == pytest.approx(np.zeros(len(truth)), abs=1e-9)
    assert sum(benchmark.bin_counts(yaw).values()) == len(truth)
