"""Face detection: recall, false boxes and time per image of `prn-predict`'s detector against the bare cascades.

    python benchmarks/bench_detect.py [--repeat 5] [--real ../shared/real] [--no-variants]

Photos: the 16 real AFLW2000-3D photos of ../shared/real/AFLW2000 (450 x 450,
one labelled face each: the box of its 68 `pt3d_68` landmarks); photos that
installed packages ship: matplotlib's grace_hopper.jpg, and its logo and
present (no people); where scikit-image's files are on the path (read as
files, scikit-image is not imported), its astronaut and camera (one face
each, boxes read off by eye) and 19 of its photos without people (coins, a
cat, text, cells, ...). Each set also scaled by 0.5, 0.75, 1.5 and 2 and
mirrored ("scaled and mirrored", 9 variants a photo). A face counts as found
when a box overlaps its box with intersection over union >= 0.3; a box that
overlaps no labelled face is a false box.

The baseline is the detector before candidates were verified: every
cascade's hits with minNeighbors 5, merged (same cascades, same merging,
same box scaling; it gives the boxes the detector gave before). Times:
medians of --repeat runs over the 16 real photos after one warm-up run, the
two detectors taking turns in the same run, OpenCV's default threads.
"""

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import scipy.io

from prn.model.prediction import detect
from prn.pipeline.datasets import read_image

SHIPPED_FACES = {"grace_hopper": [(172, 122, 360, 310)], "astronaut": [(184, 73, 265, 154)],
                 "camera": [(186, 108, 270, 192)]}
SKIMAGE_OBJECTS = ("coffee", "chelsea", "text", "page", "motorcycle_left", "rocket", "horse", "color", "retina",
                   "hubble_deep_field", "coins", "moon", "brick", "grass", "gravel", "clock_motion", "ihc", "cell",
                   "logo")
VARIANT_SCALES = (0.5, 0.75, 1.0, 1.5, 2.0)
MATCH_IOU = 0.3
BASELINE_NEIGHBORS = 5


def baseline_detect(image) -> np.ndarray:
    """The detector without verification: all hits of the four searches (minNeighbors 5), merged."""
    frontal, profile, _ = detect.cascades()
    gray, zoom, min_side = detect.search_image(image)
    found = []
    for classifier, mirrored in [(classifier, False) for classifier in frontal] + [(profile, False), (profile, True)]:
        boxes, detections = detect.candidates(classifier, gray, min_side, mirrored)
        found.append(boxes[detections > BASELINE_NEIGHBORS])
    boxes = np.concatenate(found)
    boxes = boxes[detect.non_max_suppression(boxes)] / zoom
    centres, halves = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2
    return np.hstack([centres - detect.BOX_SCALE * halves, centres + detect.BOX_SCALE * halves])


def rgb(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def aflw_photos(real):
    """[(name, image, faces (k, 4))] of the real AFLW2000-3D photos."""
    photos = []
    for path in sorted((real / "AFLW2000").glob("*.jpg")):
        points = scipy.io.loadmat(path.with_suffix(".mat"))["pt3d_68"][:2].T
        photos.append((path.stem, read_image(path), np.hstack([points.min(0), points.max(0)])[None]))
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
    return detect.intersection_over_union(np.asarray(boxes, float), np.asarray(faces, float))


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "real")
    parser.add_argument("--no-variants", action="store_true", help="skip the scaled and mirrored photos")
    args = parser.parse_args()
    detect.cascades()
    aflw = aflw_photos(args.real)
    if not aflw:
        parser.error(f"no AFLW2000 photos under {args.real / 'AFLW2000'}")
    people, objects = shipped_photos()
    sets = []
    for title, photos in (("AFLW2000 real photos", aflw), ("package photos of people", people),
                          ("package photos without people", objects)):
        sets.append((title, photos))
        if not args.no_variants:
            sets.append(("  scaled and mirrored", list(variants(photos))))
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; a face is found at IoU >= {MATCH_IOU}")
    print(f"{'photos':36s} {'detector':9s} {'found':>9s} {'false boxes':>12s}  photos with false boxes")
    for title, photos in sets:
        for label, detector in (("baseline", baseline_detect), ("verified", detect.detect_faces)):
            found, total, false, falsely = score(detector, photos)
            print(f"{title + f' ({len(photos)})':36s} {label:9s} {f'{found}/{total}':>9s} {false:12d}  "
                  f"{', '.join(falsely[:6]) + (' ...' if len(falsely) > 6 else '')}")
    images = [image for _, image, _ in aflw]
    before, after = ms_per_image((baseline_detect, detect.detect_faces), images, args.repeat)
    print(f"ms per image on the {len(images)} real photos (median of {args.repeat}): baseline {before:.1f}, "
          f"verified {after:.1f}, ratio {after / before:.2f}")


if __name__ == "__main__":
    main()
