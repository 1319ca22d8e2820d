"""Test-time views: 2D bbox NME and time per face of candidate view sets, on validation shards.

    python benchmarks/bench_views.py --data VAL_SHARDS [--checkpoint shipped] [--batch-size 16]

Each candidate is a set of (scale, angle in degrees, mirrored) views of every
crop (prn.model.views); the network's maps of its views are brought back to
the crop and averaged, and the 68 landmarks read from the mean are scored as
`prn-eval` scores them (balanced over the yaw bins, and all). The sets that
`prn-predict --views` offers were chosen with this table on synthetic
validation faces, never on a test set. Times are the whole prediction per
face, in the same run (views cost about one network pass each).
"""

import argparse
import time

import numpy as np

from prn.model.checkpoint import load_trained
from prn.model.evaluation import metrics
from prn.model.evaluation.evaluate import EvalShards
from prn.model.network import fold_batch_norms
from prn.model.views import Views
from prn.rendering.geometry.crop import crop_to_image
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.rendering.util.memory import reuse_freed_memory
from prn.uv_data import builtin_uv_dir

CANDIDATES = {
    "the crop alone (--views 1)": [(1, 0, False)],
    "mirrored alone": [(1, 0, True)],
    "turned 12 alone": [(1, 12, False)],
    "crop + mirrored": [(1, 0, False), (1, 0, True)],
    "turned +12 and -12": [(1, 12, False), (1, -12, False)],
    "turned +12, turned -12 and mirrored (--views 2)": [(1, 12, False), (1, -12, True)],
    "turned +20, turned -20 and mirrored": [(1, 20, False), (1, -20, True)],
    "scaled 0.9 and 1.1, each also mirrored": [(s, 0, m) for s in (0.9, 1.1) for m in (False, True)],
    "turned +-8, each also mirrored": [(1, a, m) for a in (8, -8) for m in (False, True)],
    "turned +-12, each also mirrored (--views 4)": [(1, a, m) for a in (12, -12) for m in (False, True)],
    "turned +-20, each also mirrored": [(1, a, m) for a in (20, -20) for m in (False, True)],
    "--views 4 + scaled 0.9 and 1.1, each also mirrored (--views 8)":
        [(1, a, m) for a in (12, -12) for m in (False, True)] + [(s, 0, m) for s in (0.9, 1.1) for m in (False, True)],
}


def score(views, network, config, test_set, uv, batch_size):
    """(balanced NME %, all NME %, ms per face) of one view set."""
    landmarks = np.empty((len(test_set), 68, 3))
    started = time.perf_counter()
    for rows, batch in test_set.batches(batch_size, ("image",)):
        posmaps = views.predict(network, config, batch["image"], batch_size=batch_size)
        landmarks[rows] = crop_to_image(posmaps[:, uv.kpt[1], uv.kpt[0]], test_set.tform[rows])
    seconds = time.perf_counter() - started
    errors = metrics.by_yaw(metrics.nme(landmarks, test_set.truth, 2, "bbox"), np.degrees(test_set.pose[:, 1]))
    return errors["balanced"], errors["all"], 1000 * seconds / len(test_set)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="validation shard folder (prn-prep build, aflw2000 layout)")
    parser.add_argument("--checkpoint", default="shipped")
    parser.add_argument("--uv-dir", default=str(builtin_uv_dir()))
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    reuse_freed_memory()  # as prn-predict does
    trained, uv, test_set = load_trained(args.checkpoint), load_uv_assets(args.uv_dir), EvalShards(args.data)
    network = fold_batch_norms(trained.network)   # as prn-predict runs it
    print(f"{len(test_set)} faces of {args.data}, checkpoint {args.checkpoint}; 2D bbox NME %")
    print("| views | count | balanced | all | ms per face |\n| --- | --- | --- | --- | --- |")
    for name, views in CANDIDATES.items():
        balanced, everything, ms = score(Views.chosen(views, uv), network, trained.config, test_set, uv,
                                       args.batch_size)
        print(f"| {name} | {len(views)} | {balanced:.2f} | {everything:.2f} | {ms:.1f} |")


if __name__ == "__main__":
    main()
