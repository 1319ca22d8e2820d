import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Keep the built-in model cache of the tests away from the user's."""
    if "PRN_CACHE_DIR" not in os.environ:
        os.environ["PRN_CACHE_DIR"] = str(tmp_path_factory.mktemp("prn-cache"))


def real_path(*parts):
    """A path under ../shared/real; the test is skipped when it is absent."""
    path = REAL.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real reference data not available: {path}")
    return path


@pytest.fixture(scope="session")
def small_fields():
    """BFM-layout arrays of a small synthetic model (about 1,500 vertices)."""
    from prn.pipeline.synthetic.face_model import make_synthetic_model
    return make_synthetic_model(n_vertices=1500, seed=3)


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory, small_fields):
    from prn.rendering.morphable.bfm import save_morphable_model
    folder = tmp_path_factory.mktemp("small-model")
    save_morphable_model(folder, small_fields)
    return folder


def write_real_topology_model(folder, n_shape=2, n_exp=1):
    """A model folder with the real BFM's mean shape, triangles, UV and landmarks and zero bases."""
    bfm = real_path("bfm")
    mean = np.load(bfm / "mean_shape.npy").astype(np.float32).reshape(-1, 1)
    rows = len(mean)
    fields = {
        "shapeMU": mean, "shapePC": np.zeros((rows, n_shape), np.float32),
        "shapeEV": np.ones((n_shape, 1), np.float32),
        "expMU": np.zeros_like(mean), "expPC": np.zeros((rows, n_exp), np.float32),
        "expEV": np.ones((n_exp, 1), np.float32),
        "texMU": np.full_like(mean, 128), "texPC": np.zeros((rows, 1), np.float32),
        "texEV": np.ones((1, 1), np.float32),
        "tri": (np.load(bfm / "triangles.npy").T + 1).astype(np.int32),
        "kpt_ind": (np.load(bfm / "kpt_ind.npy") + 1).astype(np.int32).reshape(1, -1),
        "UV": scipy.io.loadmat(bfm / "BFM_UV.mat")["UV"],
    }
    from prn.rendering.morphable.bfm import save_morphable_model
    save_morphable_model(folder, fields)
    return folder


def training_shards(root, face_model_dir):
    """root/train (24 samples), root/val (8) and root/uv: a small training set of the model at model_dir."""
    from prn.rendering.morphable.bfm import load_morphable_model
    from prn.rendering.morphable.uv_assets import compute_uv_assets, write_uv_assets

    for name, count, seed in (("train", 24, 1), ("val", 8, 2)):
        synthetic_shards(root, face_model_dir, count, seed=seed).rename(root / name)
    write_uv_assets(compute_uv_assets(load_morphable_model(face_model_dir), 256), root / "uv")
    return root


def synthetic_shards(root, face_model_dir, count, seed=0, image_size=160, shard_size=8, layout="300w-lp"):
    """Render `count` synthetic samples under root/raw-<seed> and build them into shards; returns the folder."""
    from prn.pipeline.build import BuildSettings, build
    from prn.pipeline.synthetic.synth import SynthSettings, synthesize

    raw, out = root / f"raw-{seed}", root / f"shards-{seed}"
    synthesize(SynthSettings(face_model_dir=face_model_dir, out_dir=raw, layout=layout, seed=seed,
                             image_size=image_size), count, progress=False)
    build(BuildSettings(face_model_dir=face_model_dir, out_dir=out, layout=layout, shard_size=shard_size), raw,
          progress=False)
    return out
