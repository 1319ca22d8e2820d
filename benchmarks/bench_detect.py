"""Face detection: recall, false boxes and time per photo of RetinaFace (prn-predict's detector) against Haar.

    python benchmarks/bench_detect.py [--repeat 5] [--real ../shared/real] [--synthetic 64] [--no-variants]
    python benchmarks/bench_detect.py --fit-boxes 600

Photos: the 16 real AFLW2000-3D photos of ../shared/real/AFLW2000 (450 x 450,
one labelled face each: the box of its 68 `pt3d_68` landmarks); photos that
installed packages ship: matplotlib's grace_hopper.jpg, and its logo and
present (no people); where scikit-image's files are on the path (read as
files, scikit-image is not imported), its astronaut and camera (one face
each, boxes read off by eye) and 19 of its photos without people (coins, a
cat, text, cells, ...); and --synthetic AFLW2000-format photos of the
built-in model's `photo` world (seed 2, as the synthetic test set). Each
set of packaged and real photos also scaled by 0.5, 0.75, 1.5 and 2 and
mirrored ("scaled and mirrored", 9 variants a photo). A face counts as
found when a box overlaps its box with intersection over union >= 0.3; a
box that overlaps no labelled face is a false box.

The baseline is `--detector haar` as prn-predict runs it (searched at 300 px
on the shorter side). Times: medians of --repeat runs over the 16 real
photos after one warm-up run, the detectors taking turns in the same run,
OpenCV's default threads (RetinaFace runs on one onnxruntime thread).

Then the crop rule (docs/formats.md section 6) with each detector's boxes:
the 2D NME (68 landmarks, % of the true box) of the shipped network through
`Predictor` (its defaults), given the box of the true landmarks and given
each detector's box of that face, on the photos where every detector found
it.

--fit-boxes N fits retina.LANDMARK_BOX instead: least squares on N synthetic
photo-world photos of seed 0 (not the test seed), printed with the errors
on the held-out second half of a fit on the first, beside a fixed shift and
scale of the box (their medians on the first half).
"""

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import scipy.io

from prn.model.evaluation.metrics import nme
from prn.model.prediction import Predictor, detect, haar, retina
from prn.pipeline.datasets import read_image
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.pipeline.synthetic.synth import SynthSettings, synthesize

SHIPPED_FACES = {"grace_hopper": [(172, 122, 360, 310)], "astronaut": [(184, 73, 265, 154)],
                 "camera": [(186, 108, 270, 192)]}
SKIMAGE_OBJECTS = ("coffee", "chelsea", "text", "page", "motorcycle_left", "rocket", "horse", "color", "retina",
                   "hubble_deep_field", "coins", "moon", "brick", "grass", "gravel", "clock_motion", "ihc", "cell",
                   "logo")
VARIANT_SCALES = (0.5, 0.75, 1.0, 1.5, 2.0)
MATCH_IOU = 0.3
DETECTORS = {"haar": lambda image: detect.detect_faces(image, "haar"),
             "retinaface": lambda image: detect.detect_faces(image, "retinaface")}


def rgb(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def labelled_photos(folder):
    """[(name, image, faces (1, 4), 68 landmarks (68, 2))] of AFLW2000-3D-format photos."""
    photos = []
    for path in sorted(Path(folder).glob("*.jpg")):
        points = scipy.io.loadmat(path.with_suffix(".mat"))["pt3d_68"][:2].T
        photos.append((path.stem, read_image(path), np.hstack([points.min(0), points.max(0)])[None], points))
    return photos


def variants(photos):
    """The photos mirrored, and scaled by VARIANT_SCALES with and without mirroring (not the photos themselves)."""
    for name, image, faces in photos:
        for scale in VARIANT_SCALES:
            scaled = image if scale == 1.0 else cv2.resize(
                image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            if scale != 1.0:
                yield f"{name} x{scale}", scaled, faces * scale
            width = scaled.shape[1]
            yield (f"{name} x{scale} mirrored", np.ascontiguousarray(scaled[:, ::-1]),
                   np.column_stack([width - faces[:, 2] * scale, faces[:, 1] * scale,
                                    width - faces[:, 0] * scale, faces[:, 3] * scale]))


def shipped_photos():
    """([(name, image, faces)] photos of people, [(name, image, no faces)] photos without) that packages ship."""
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    people = [("grace_hopper", rgb(sample_data / "grace_hopper.jpg"))]
    objects = [(name, rgb(sample_data / name), np.zeros((0, 4)))
               for name in ("logo2.png", "Minduka_Present_Blue_Pack.png")]
    spec = importlib.util.find_spec("skimage")
    if spec is not None:
        folder = Path(spec.origin).parent / "data"
        people += [(name, rgb(folder / f"{name}.png")) for name in ("astronaut", "camera")]
        objects += [(name, rgb(next(folder.glob(f"{name}.*"))), np.zeros((0, 4))) for name in SKIMAGE_OBJECTS]
    return [(name, image, np.array(SHIPPED_FACES[name], float)) for name, image in people], objects


def iou(boxes, faces):
    if not len(boxes) or not len(faces):
        return np.zeros((len(boxes), len(faces)))
    return haar.intersection_over_union(np.asarray(boxes, float), np.asarray(faces, float))


def score(detector, photos):
    """(faces found, faces, false boxes, names of photos with false boxes) of a detector on the photos."""
    found = total = false = 0
    falsely = []
    for name, image, faces in photos:
        overlap = iou(detector(image), faces) >= MATCH_IOU
        found += int(overlap.any(axis=0).sum())
        total += len(faces)
        unmatched = int((~overlap.any(axis=1)).sum())
        false += unmatched
        if unmatched:
            falsely.append(name)
    return found, total, false, falsely


def ms_per_image(detectors, images, repeat):
    """Median ms per image of each detector over the images; the detectors take turns within each repeat."""
    times = [[] for _ in detectors]
    for run in range(repeat + 1):
        for detector, spent in zip(detectors, times):
            start = time.perf_counter()
            for image in images:
                detector(image)
            if run:  # run 0 is the warm-up
                spent.append(time.perf_counter() - start)
    return [1000 * statistics.median(spent) / len(images) for spent in times]


def crop_rule_nmes(predictor, photos):
    """{box source: mean 2D NME %} of the predictor given the true landmarks' box and each detector's box of the
    face, over the photos where every detector found it; and how many photos that is."""
    boxes = {"true landmarks' box": [faces[0] for _, _, faces, _ in photos]}
    for label, detector in DETECTORS.items():
        boxes[label] = []
        for _, image, faces, _ in photos:
            found = detector(image)
            overlap = iou(found, faces)[:, 0]
            boxes[label].append(found[np.argmax(overlap)] if len(found) and overlap.max() >= MATCH_IOU else None)
    common = [k for k in range(len(photos)) if all(boxes[label][k] is not None for label in boxes)]
    truth = np.stack([photos[k][3] for k in common])
    figures = {}
    for label, chosen in boxes.items():
        landmarks = np.stack([predictor(photos[k][1], chosen[k][None])[0].landmarks[:, :2] for k in common])
        figures[label] = float(nme(landmarks, truth).mean())
    return figures, len(common)


def box_targets(boxes, truth_boxes) -> np.ndarray:
    """(k, 3): the true boxes' centre offsets from the boxes' centres (x, y) and their sides, over the boxes' sides."""
    side = (boxes[:, 2] - boxes[:, 0] + boxes[:, 3] - boxes[:, 1]) / 2
    offsets = (truth_boxes[:, :2] + truth_boxes[:, 2:]) / 2 - (boxes[:, :2] + boxes[:, 2:]) / 2
    truth_side = (truth_boxes[:, 2] - truth_boxes[:, 0] + truth_boxes[:, 3] - truth_boxes[:, 1]) / 2
    return np.column_stack([offsets, truth_side]) / side[:, None]


def fit_boxes(count):
    """Fit and print retina.LANDMARK_BOX from `count` synthetic photos (module doc)."""
    with tempfile.TemporaryDirectory() as work:
        synthesize(SynthSettings(face_model_dir=builtin_face_model_dir(), out_dir=Path(work), layout="aflw2000", seed=0,
                                 world="photo"), count, progress=False)
        photos = labelled_photos(Path(work) / "AFLW2000")
    boxes, points, truth = [], [], []
    for _, image, faces, _ in photos:
        found, _, five = retina.detect_faces(image)
        overlap = iou(found, faces)[:, 0]
        if len(found) and overlap.max() >= MATCH_IOU:
            boxes.append(found[np.argmax(overlap)])
            points.append(five[np.argmax(overlap)])
            truth.append(faces[0])
    boxes, points, truth = np.array(boxes), np.array(points), np.array(truth)
    features, targets = retina.box_features(boxes, points), box_targets(boxes, truth)
    half = len(boxes) // 2
    coefficients = np.linalg.lstsq(features[:half], targets[:half], rcond=None)[0]
    fixed = np.median(targets[:half], axis=0)
    for label, estimate in (("five landmarks", features[half:] @ coefficients),
                            ("fixed shift and scale", np.tile(fixed, (len(boxes) - half, 1)))):
        error = np.median(np.abs(estimate - targets[half:]), axis=0) / targets[half:, 2].mean()
        print(f"held out ({len(boxes) - half}), {label}: median error of centre x, y and side, % of the side: "
              + ", ".join(f"{100 * value:.1f}" for value in error))
    coefficients = np.linalg.lstsq(features, targets, rcond=None)[0]
    print(f"LANDMARK_BOX from {len(boxes)} of {len(photos)} photos (found):")
    print(np.array2string(np.round(coefficients, 3), separator=", "))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "real")
    parser.add_argument("--synthetic", type=int, default=64, help="synthetic photo-world photos (0: none)")
    parser.add_argument("--no-variants", action="store_true", help="skip the scaled and mirrored photos")
    parser.add_argument("--fit-boxes", type=int, default=0, metavar="N", help="fit retina.LANDMARK_BOX instead")
    args = parser.parse_args()
    if args.fit_boxes:
        fit_boxes(args.fit_boxes)
        return
    for name in DETECTORS:
        detect.check_detector(name)
    aflw = labelled_photos(args.real / "AFLW2000")
    if not aflw:
        parser.error(f"no AFLW2000 photos under {args.real / 'AFLW2000'}")
    with tempfile.TemporaryDirectory() as work:
        if args.synthetic:
            synthesize(SynthSettings(face_model_dir=builtin_face_model_dir(), out_dir=Path(work), layout="aflw2000",
                                     seed=2, world="photo"), args.synthetic, progress=False)
        synthetic = labelled_photos(Path(work) / "AFLW2000") if args.synthetic else []
    people, objects = shipped_photos()
    sets = []
    for title, photos, varied in (("AFLW2000 real photos", [p[:3] for p in aflw], True),
                                  ("package photos of people", people, True),
                                  ("package photos without people", objects, True),
                                  ("synthetic photo-world photos", [p[:3] for p in synthetic], False)):
        if photos:
            sets.append((title, photos))
        if varied and not args.no_variants:
            sets.append(("  scaled and mirrored", list(variants(photos))))
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; a face is found at IoU >= {MATCH_IOU}")
    print(f"{'photos':36s} {'detector':11s} {'found':>9s} {'false boxes':>12s}  photos with false boxes")
    for title, photos in sets:
        for label, detector in DETECTORS.items():
            found, total, false, falsely = score(detector, photos)
            print(f"{title + f' ({len(photos)})':36s} {label:11s} {f'{found}/{total}':>9s} {false:12d}  "
                  f"{', '.join(falsely[:6]) + (' ...' if len(falsely) > 6 else '')}")
    images = [image for _, image, _, _ in aflw]
    before, after = ms_per_image(list(DETECTORS.values()), images, args.repeat)
    print(f"ms per photo on the {len(images)} real photos (median of {args.repeat}): haar {before:.1f}, "
          f"retinaface {after:.1f}, ratio {after / before:.2f}")
    predictor = Predictor.from_checkpoint()
    for title, photos in (("real", aflw), ("synthetic", synthetic)):
        if photos:
            figures, count = crop_rule_nmes(predictor, photos)
            print(f"crop rule, {title} photos found by every detector ({count}), NME %: "
                  + ", ".join(f"{label} {value:.2f}" for label, value in figures.items()))


if __name__ == "__main__":
    main()
