"""Speed of `prn-prep augment` per sample on one core, against `build` measured in the same run.

    python benchmarks/bench_augment.py [--samples 256] [--yaw -60:60:30]

Inputs: a 300W-LP-like synthetic dataset from the default built-in model
(49,951 vertices, 450 x 450), built into shards, then augmented with a yaw
grid. Prints the median time per augmented sample over output shards and per
built sample over source shards, and the ratio (the issue's floor: augment at
least half of build's throughput).
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from prn.pipeline import augment as augment_stage
from prn.pipeline import build as build_stage
from prn.pipeline.shards import write_manifest
from prn.pipeline.stage import run_task
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.pipeline.synthetic.synth import SynthSettings, synthesize


def median_per_sample(function, tasks, settings):
    function_tasks = list(tasks)
    run_task(function, function_tasks[0], settings)  # warm-up
    times = []
    for task in function_tasks[1:]:
        start = time.perf_counter()
        result = run_task(function, task, settings)
        count = len(result.written) + len(result.rejects)
        times.append((time.perf_counter() - start) / max(1, count))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--yaw", default="-60:60:30")
    args = parser.parse_args()
    face_model_dir = builtin_face_model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(SynthSettings(face_model_dir=face_model_dir, out_dir=tmp / "raw", layout="300w-lp",
                                 world="face"), args.samples,
                   progress=False)
        build_settings = build_stage.BuildSettings(face_model_dir=face_model_dir, out_dir=tmp / "shards",
                                                   layout="300w-lp", shard_size=32)
        _, build_tasks = build_stage.plan_shards(tmp / "raw", "300w-lp", 32)
        build_time = median_per_sample(build_stage.build_shard, build_tasks, build_settings)
        write_manifest(build_settings, tmp / "raw", build_tasks,
                       build_stage.worker_morphable_model(face_model_dir).fingerprint, [])
        grid = augment_stage.rotation_grid((0, 0, None), augment_stage.parse_range(args.yaw, "--yaw"), (0, 0, None))
        settings = augment_stage.AugmentSettings(face_model_dir=face_model_dir, out_dir=tmp / "aug", layout="300w-lp",
                                                 rotations=grid, shard_size=32 * len(grid) // 2)
        _, tasks = augment_stage.plan(settings, tmp / "shards")
        augment_time = median_per_sample(augment_stage.augment_shard, tasks, settings)
    print(f"{len(grid)} rotations per sample ({args.yaw} degrees of yaw); one core")
    print(f"{'stage':30s} {'ms/sample':>10s} {'samples/s':>10s}")
    print(f"{'build (baseline)':30s} {build_time * 1e3:10.2f} {1 / build_time:10.1f}")
    print(f"{'augment':30s} {augment_time * 1e3:10.2f} {1 / augment_time:10.1f}")
    print(f"augment throughput / build throughput: {build_time / augment_time:.2f} (floor 0.5)")


if __name__ == "__main__":
    main()
