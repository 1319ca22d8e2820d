"""Landmarks from a fit of the morphable model: 2D bbox NME and time per face against the map's own landmarks,
on validation shards.

    python benchmarks/bench_landmark_fit.py --data VAL_SHARDS [--checkpoint shipped] [--views 4]

For each view count the network's (view-averaged) maps of every crop are
made once; the 68 landmarks are then read at the UV landmark pixels ("map")
and from the fitted built-in model at each regularization (px^2,
prn.rendering.morphable.map_fit), scored as `prn-eval` scores them (balanced
over the yaw bins, and all). The default regularization was chosen with this
table on synthetic validation faces, never on a test set. Times are the
median over repeats of reading all faces' landmarks, per face, in the same run.
"""

import argparse
import time

import numpy as np

from prn.model.checkpoint import load_trained
from prn.model.evaluation import metrics
from prn.model.evaluation.evaluate import EvalShards
from prn.model.landmarks import LandmarkReader
from prn.model.views import Views
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.rendering.geometry.crop import crop_to_image
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.map_fit import MapFitter
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.uv_data import builtin_uv_dir

REGULARIZATIONS = (0.0, 100.0, 1_000.0, 3_000.0, 10_000.0, 30_000.0, 100_000.0)
REPEATS = 3


def timed(read, maps):
    """(landmarks, median ms per face) of read(maps) over REPEATS runs."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        landmarks = read(maps)
        times.append(time.perf_counter() - started)
    return landmarks, 1000 * float(np.median(times)) / len(maps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="validation shards of the built-in model")
    parser.add_argument("--checkpoint", default="shipped")
    parser.add_argument("--views", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    uv = load_uv_assets(builtin_uv_dir())
    trained = load_trained(args.checkpoint)
    model = load_morphable_model(builtin_face_model_dir())
    shards = EvalShards(args.data)
    yaw = np.degrees(shards.pose[:, 1])
    print(f"{len(shards)} faces of {args.data}, {args.checkpoint}; 2D bbox NME % balanced / all; ms per face")
    for count in args.views:
        views = Views.of(count, uv)
        maps = np.concatenate([views.predict(trained.network, trained.config, batch["image"],
                                             batch_size=args.batch_size)
                               for _, batch in shards.batches(args.batch_size, ("image",))])
        readers = {"map": LandmarkReader(uv)}
        readers.update({f"fit, regularization {value:g}": LandmarkReader(uv, MapFitter(model, uv.face_ind,
                                                                                      regularization=value))
                        for value in REGULARIZATIONS})
        print(f"| {count} views | balanced | all | ms per face |")
        print("| --- | --- | --- | --- |")
        for name, reader in readers.items():
            landmarks, ms = timed(reader, maps)
            scores = metrics.by_yaw(metrics.nme(crop_to_image(landmarks, shards.tform), shards.truth, 2), yaw)
            print(f"| {name} | {scores['balanced']:.2f} | {scores['all']:.2f} | {ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
