"""The Python API: a trained PRN called on an RGB image and face boxes, giving 3D faces in image pixels.

    predictor = Predictor.from_checkpoint("best.pt")
    faces = predictor(image_rgb, boxes=[[x0, y0, x1, y1]])    # boxes None: the face detector's

Each box is clipped to the image (one wholly outside is an error) and gives a
256 x 256 crop (boxes.py); the crops go through the network in batches of
`batch_size`, each as `views` turned and mirrored copies whose maps are
averaged (model/views.py; 1: the crop alone); each position map is mapped back to the image by the inverse
crop similarity ((x, y) by its inverse, z divided by its scale). The 68
landmarks and the dense face are those of a fit of the network's morphable
model to the map, or read from the map (`landmarks`, model/landmarks.py):
the landmarks as it is, the dense face smoothed within the face region
(`inference.FaceSmoother`, `smoothing` pixels; 0: as the network gave it).
Coordinates: image pixels, x right, y down, z towards the viewer (its origin
is arbitrary: the crop's). The mesh triangles are `predictor.uv.triangles`,
wound counter-clockwise seen from the front with y up.

To batch crops across images: `predict_many(images, boxes)`, or `prepare`
each image, `posmaps` of them all at once, then `faces` of each.
"""

import functools
from dataclasses import dataclass, replace

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from prn.model.checkpoint import load_trained, resolve_checkpoint
from prn.model.inference import FACE_SMOOTHING, FaceSmoother
from prn.model.landmarks import DEFAULT_LANDMARKS, LandmarkReader, check_reading
from prn.model.network import fold_batch_norms
from prn.model.network_config import NetworkConfig
from prn.model.prediction.boxes import as_boxes, clip_box, crop_faces, landmark_transforms, maps_between, warp_crops
from prn.model.prediction.detect import DEFAULT_DETECTOR, DETECTORS, detect_faces
from prn.model.prediction.export import onnx_runtime_network
from prn.model.views import DEFAULT_VIEWS, VIEW_SETS, Views
from prn.pipeline.face_match import resolve, shard_folder_claims
from prn.rendering.geometry.crop import CROP_SIZE as CROP
from prn.rendering.geometry.crop import crop_to_image
from prn.rendering.geometry.head_pose import estimate_pose
from prn.rendering.morphable.uv_assets import UVAssetFolder
from prn.rendering.raster.texture import sample_bilinear
from prn.rendering.util.errors import InputError

ENGINES = ("torch", "onnxruntime")
# The head pose is fitted to every 4th dense face point: 0.23 times the time of all of them, and on 60
# validation faces no angle moved by more than 0.04 degrees (docs/prediction.md, "Speed").
POSE_STEP = 4
# Crops reframed by the landmarks of a first, one-view pass before the prediction (docs/prediction.md, "Reframing").
DEFAULT_REFRAMES = 1
MAX_REFRAMES = 3


@functools.lru_cache(maxsize=1)
def _thread_pools() -> ThreadpoolController:
    return ThreadpoolController()


def single_threaded_blas():
    """A context in which NumPy's BLAS runs on one thread.

    After each network pass torch's threads keep spinning for a while; NumPy's
    BLAS threads then fight them for the cores, and the small matrix products
    of the pose fit took twice as long (docs/benchmarks.md). torch's own
    kernels do not use this BLAS.
    """
    return _thread_pools().limit(limits=1, user_api="blas")


def front_wound(uv: UVAssetFolder) -> UVAssetFolder:
    """The UV assets with their triangles wound counter-clockwise seen from the front with y up."""
    # The winding is the same on every face the network predicts, so the
    # canonical face decides it once: front faces should point to +z with y up.
    a, b, c = (uv.canonical[uv.triangles[:, i]] * (1, -1, 1) for i in range(3))
    if np.cross(b - a, c - a)[:, 2].sum() < 0:
        uv = replace(uv, triangles=np.ascontiguousarray(uv.triangles[:, [0, 2, 1]]))
    return uv


@dataclass(frozen=True)
class FaceCrops:
    """An image's faces cut out for the network."""

    image: np.ndarray       # (h, w, 3) uint8 RGB
    boxes: np.ndarray       # (k, 4) float64 face boxes clipped to the image, pixels
    clipped: np.ndarray     # (k,) bool: the box given reached outside the image
    crops: np.ndarray       # (k, 256, 256, 3) uint8 RGB
    transforms: np.ndarray  # (k, 3, 3) float64 image -> crop similarities


@dataclass(frozen=True)
class Face:
    """One predicted face in image pixels (x right, y down, z towards the viewer)."""

    box: np.ndarray         # (4,) float64 [x0, y0, x1, y1], clipped to the image
    box_clipped: bool       # the box given reached outside the image
    landmarks: np.ndarray   # (68, 3) float32
    vertices: np.ndarray    # (f, 3) float32 the dense face at face_ind: the fitted model's surface, or the map
    pose: np.ndarray        # (3,) float64 pitch, yaw, roll in degrees (300W-LP convention)
    colors: np.ndarray      # (f, 3) uint8 RGB of the image at the vertices


def check_image(image) -> np.ndarray:
    """A C-contiguous (h, w, 3) uint8 RGB image; InputError for any other array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 \
            or 0 in image.shape:
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"image must be an (H, W, 3) uint8 RGB array, got {described}")
    return np.ascontiguousarray(image)


@dataclass(frozen=True)
class Predictor:
    """A trained network with its UV assets; call it on an image (and boxes) for its faces."""

    network: torch.nn.Module
    config: NetworkConfig
    uv: UVAssetFolder
    device: str = "cpu"
    batch_size: int = 16
    smoother: FaceSmoother | None = None
    views: Views | None = None
    landmark_reader: LandmarkReader | None = None     # None: read at uv.kpt
    detector: str = DEFAULT_DETECTOR                  # finds the faces of images given without boxes (detect.py)
    reframes: int = 0                                 # passes that reframe each crop by its landmarks first

    def __post_init__(self):
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InputError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if isinstance(self.reframes, bool) or not isinstance(self.reframes, int) \
                or not 0 <= self.reframes <= MAX_REFRAMES:
            raise InputError(f"reframes must be an integer from 0 to {MAX_REFRAMES}, got {self.reframes!r}")

    @classmethod
    def from_checkpoint(cls, path=None, uv_dir=None, device="cpu", batch_size=16, progress=None,
                        engine="torch", smoothing=FACE_SMOOTHING, views=DEFAULT_VIEWS, landmarks=DEFAULT_LANDMARKS,
                        fit_model=None, detector=DEFAULT_DETECTOR, reframes=DEFAULT_REFRAMES) -> "Predictor":
        """The checkpoint's network (batch norms folded: network.fold_batch_norms) with 256 x 256 UV assets
        of the face model it was trained for.

        path: a `prn-train` checkpoint; None or "shipped": the shipped network.
        uv_dir: refused (InputError) when of another face model; None: found
        by the resolver (pipeline/face_match.py: the folder it was trained
        with, the built-in assets, FACE_MODEL/uv256). progress: called with
        the one-line note when the assets record no face model. engine: "torch", or
        "onnxruntime" (CPU only; export.onnx_runtime_network). smoothing:
        the Gaussian's sigma, pixels of the 256 map, that smooths the dense
        face read from the map (0: none; a fitted face is not smoothed).
        views: how many turned and mirrored copies of each crop the network
        sees (1, 2, 4 or 8; model/views.py). landmarks:
        "fit" the network's face model (`fit_model`, a face model folder;
        None: a folder its training shards record, else the built-in model
        when the network is of it) to each map and take its
        landmarks and surface, or read both from the "map" (model/landmarks.py).
        detector: "retinaface" or "haar", for images given without boxes
        (detect.py); checked here, loaded at the first image that needs it.
        reframes: how many times each crop is first reframed by the
        landmarks of a one-view pass over it (0 to MAX_REFRAMES; `posmaps`).
        """
        if engine not in ENGINES:
            raise InputError(f"unknown engine '{engine}'; expected one of {', '.join(ENGINES)}")
        if not (np.isfinite(smoothing) and smoothing >= 0):
            raise InputError(f"smoothing must be a finite number >= 0, got {smoothing!r}")
        if views not in VIEW_SETS:
            raise InputError(f"views must be one of {', '.join(map(str, VIEW_SETS))}, got {views!r}")
        if detector not in DETECTORS:
            raise InputError(f"unknown detector '{detector}'; expected one of {', '.join(DETECTORS)}")
        if device == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available")
        if engine == "onnxruntime" and device != "cpu":
            raise InputError("--engine onnxruntime runs on the CPU: use --device cpu")
        path = resolve_checkpoint(path)
        trained = load_trained(path, device)
        check_reading(landmarks)
        fit = landmarks == "fit"
        chosen = resolve([trained.face_model], face_model="optional" if fit else "no",
                         given_face_model=fit_model if fit else None, face_model_option="--fit-model", uv=True,
                         given_uv=uv_dir, uv_size=CROP, hints=shard_folder_claims(trained.data))
        if chosen.note and progress is not None:
            progress(chosen.note)
        network = fold_batch_norms(trained.network).to(memory_format=torch.channels_last)
        if engine == "onnxruntime":
            network = onnx_runtime_network(network, trained.config.size)
        uv = front_wound(chosen.uv)
        reader = LandmarkReader.of(landmarks, uv, chosen.face_model_dir)
        return cls(network, trained.config, uv, device, batch_size,
                   FaceSmoother(uv.face_ind, smoothing) if smoothing > 0 else None, Views.of(views, uv), reader,
                   detector, reframes)

    def method(self) -> dict:
        """How the faces are read, as the output JSON records it: landmarks ("fit" or "map"), the fitted model's
        folder (None when read from the map), views and reframes."""
        reader = self.landmark_reader or LandmarkReader(self.uv)
        return {"landmarks": reader.reading, "fit_model": reader.fitted_folder,
                "views": len(self.views.views) if self.views else 1, "reframes": self.reframes}

    def __call__(self, image_rgb, boxes=None) -> list:
        """[Face] of an (H, W, 3) uint8 RGB image; boxes (k, 4) [x0, y0, x1, y1], None: the detector's."""
        prepared = self.prepare(image_rgb, boxes)
        return self.faces(prepared, self.posmaps([prepared])[0])

    def predict_many(self, images, boxes=None) -> list:
        """[[Face] per image] of a list of images, their crops batched together; boxes None or one entry per image."""
        boxes = [None] * len(images) if boxes is None else list(boxes)
        if len(boxes) != len(images):
            raise InputError(f"boxes: {len(boxes)} entries for {len(images)} images")
        prepared = []
        for number, (image, given) in enumerate(zip(images, boxes)):
            try:
                prepared.append(self.prepare(image, given))
            except InputError as error:
                raise InputError(f"images[{number}]: {error}") from None
        return [self.faces(crops, posmaps) for crops, posmaps in zip(prepared, self.posmaps(prepared))]

    def prepare(self, image_rgb, boxes=None) -> FaceCrops:
        """The image checked, its face boxes (given, else detected; none is fine) clipped to it, and cropped."""
        image = check_image(image_rgb)
        height, width = image.shape[:2]
        given = detect_faces(image, self.detector) if boxes is None else as_boxes(boxes)
        inside = np.array([clip_box(box, width, height) for box in given]).reshape(-1, 4)
        crops, transforms = crop_faces(image, inside)
        return FaceCrops(image, inside, (inside != given).any(axis=1), crops, transforms)

    def posmaps(self, prepared) -> list:
        """[(k, 256, 256, 3) float32 position maps, 256-crop pixels] of a list of FaceCrops: one network pass
        per reframe and one of all the views.

        With `reframes`, each face is first cropped again as training crops
        frame a face (1.5 times its 68 landmarks' box, centred), from the
        landmarks of a one-view pass over its current crop, and the views run
        on the last such crop; the maps are then moved back into the pixels
        of the FaceCrops' own crops.
        """
        counts = [len(crops.crops) for crops in prepared]
        if not sum(counts):
            return [np.zeros((count, CROP, CROP, 3), np.float32) for count in counts]
        one_view = Views.of(1, self.uv)
        views = self.views or one_view
        crops = np.concatenate([faces.crops for faces in prepared])
        given = np.concatenate([faces.transforms for faces in prepared])
        framed = given
        for _ in range(self.reframes):
            first = one_view.predict(self.network, self.config, crops, device=self.device, batch_size=self.batch_size)
            framed = landmark_transforms(first[:, self.uv.kpt[1], self.uv.kpt[0]], framed)
            crops = np.concatenate([warp_crops(faces.image, transforms) for faces, transforms
                                    in zip(prepared, np.split(framed, np.cumsum(counts)[:-1]))])
        maps = views.predict(self.network, self.config, crops, device=self.device, batch_size=self.batch_size)
        if self.reframes:
            maps = maps_between(maps, framed, given)
        return np.split(maps, np.cumsum(counts)[:-1])

    def read(self, posmaps) -> tuple:
        """posmaps (k, 256, 256, 3) -> (68 landmarks (k, 68, 3) float64, dense faces (k, f, 3) float32 at
        uv.face_ind), 256-crop pixels."""
        return (self.landmark_reader or LandmarkReader(self.uv)).read(posmaps, self.smoother)

    def faces(self, prepared: FaceCrops, posmaps) -> list:
        """[Face] from an image's crops and their position maps (k, 256, 256, 3), moved back into the image."""
        with single_threaded_blas():
            return self._faces(prepared, posmaps)

    def _faces(self, prepared: FaceCrops, posmaps) -> list:
        landmarks, dense = self.read(posmaps)
        points = crop_to_image(np.concatenate([dense, landmarks], axis=1), prepared.transforms)
        faces = []
        for box, clipped, image_points in zip(prepared.boxes, prepared.clipped, points):
            dense, landmarks = image_points[:len(self.uv.face_ind)], image_points[len(self.uv.face_ind):]
            pose = np.degrees(estimate_pose(dense[::POSE_STEP], self.uv.canonical[::POSE_STEP]))
            vertices = dense.astype(np.float32)
            colors = np.clip(np.rint(sample_bilinear(prepared.image, vertices[:, :2])), 0, 255).astype(np.uint8)
            faces.append(Face(box, bool(clipped), landmarks.astype(np.float32), vertices, pose, colors))
        return faces
