"""The shipped uv_data/ equals a fresh regeneration from the built-in model, on any CPU."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import WEIGHT_PRESETS, compute_uv_assets, load_uv_assets
from prn.uv_data import builtin_uv_dir


@pytest.mark.slow
def test_shipped_uv_data_equals_regeneration():
    shipped = builtin_uv_dir()
    fresh = compute_uv_assets(load_morphable_model(builtin_face_model_dir()), 256)
    loaded = load_uv_assets(shipped)
    assert loaded.size == 256 and loaded.face_model_fingerprint == fresh.face_model_fingerprint
    np.testing.assert_array_equal(np.loadtxt(shipped / "uv_kpt_ind.txt", dtype=np.int64), fresh.kpt)
    np.testing.assert_array_equal(np.loadtxt(shipped / "face_ind.txt", dtype=np.int64), fresh.face_ind)
    np.testing.assert_array_equal(np.loadtxt(shipped / "triangles.txt", dtype=np.int64), fresh.triangles)
    mask = cv2.imread(str(shipped / "uv_face_mask.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(mask > 0, fresh.face_mask)
    # float results may differ in the last bits between BLAS builds
    np.testing.assert_allclose(np.load(shipped / "canonical_vertices.npy"), fresh.canonical, atol=1e-3)
    for preset in WEIGHT_PRESETS:
        np.testing.assert_array_equal(np.load(shipped / f"weight_mask_{preset}.npy"), fresh.weights[preset])


# the generator's maths under other BLAS kernels and numpy without its AVX2 and AVX-512 loops
OTHER_KERNELS = [{"OPENBLAS_CORETYPE": "Sandybridge"},
                 {"OPENBLAS_CORETYPE": "SkylakeX", "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}]
FINGERPRINT_OF_A_NEW_MODEL = (
    "import sys, tempfile\n"
    "from prn.pipeline.synthetic.builtin import write_synthetic_model\n"
    "from prn.rendering.morphable.bfm import load_morphable_model\n"
    "print(load_morphable_model(write_synthetic_model(tempfile.mkdtemp(dir=sys.argv[1]))).fingerprint)\n"
)


@pytest.mark.slow
@pytest.mark.parametrize("kernels", OTHER_KERNELS, ids=["sandybridge-blas", "baseline-numpy"])
def test_the_builtin_model_has_the_shipped_fingerprint_whatever_the_cpu_kernels(kernels, tmp_path):
    made = subprocess.run([sys.executable, "-c", FINGERPRINT_OF_A_NEW_MODEL, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, **kernels}, check=True)
    assert made.stdout.strip() == load_uv_assets(builtin_uv_dir()).face_model_fingerprint
