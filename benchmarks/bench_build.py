"""Speed of `prn-prep build` against face3d's 300W-LP recipe, side by side in one run, on one core.

    pip install -e '.[bench]'     # Cython, scikit-image, matplotlib: what face3d needs
    python benchmarks/bench_build.py [--samples 512] [--shard-size 32] [--face3d-per-shard 8] [--profile]

Inputs: 300W-LP-format samples (450 x 450 JPEGs + .mat) rendered once from
the default built-in model (BFM.mat layout, 49,951 vertices) into a
temporary folder. face3d is fetched and compiled on first use
(face3d_recipe.py); without it only the build is timed.

Per round, one shard after another: `build` of the shard (one process, BLAS
on one thread), then face3d's recipe (face3d_recipe.Face3dRecipe.sample) on
`--face3d-per-shard` samples of the same shard, so a busy moment slows both.
Printed: each one's median ms per sample and their ratio. Both crop with
random jitter, as each does by default. Then, jitter off and position maps
in float32, the two position maps of the same samples are compared in the
original image's pixels (through each one's crop transform), over the UV
pixels both cover. `--profile` adds where build's time goes (cProfile of one
shard, own time per function). Last, build on a local Dask cluster of 2
single-threaded workers, whose shards must equal the one-process ones byte
for byte.
"""

import argparse
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from face3d_recipe import Face3dRecipe, Face3dUnavailable, load_face3d
from threadpoolctl import threadpool_limits

from prn.pipeline import build as build_stage
from prn.pipeline.sample_geometry import worker_uv_table
from prn.pipeline.shards import open_shard
from prn.pipeline.shards.writer import shard_name
from prn.pipeline.stage import dask_client, run_task
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.pipeline.synthetic.synth import SynthSettings, synthesize

FACE3D_CACHE = Path.home() / ".cache" / "prn" / "face3d"


def image_points(posmap, tform):
    """(S, S, 2) float64 original-image (x, y) of a position map (S, S, 3) in crop pixels, tform (3, 3)."""
    inverse = np.linalg.inv(np.asarray(tform, np.float64))
    xy = np.asarray(posmap, np.float64)[..., :2]
    return xy @ inverse[:2, :2].T + inverse[:2, 2]


def compare_maps(recipe, face_model_dir, root, names, work):
    """Percentiles (50, 99, 100) of the (x, y) distance in image pixels between build's and face3d's maps."""
    settings = build_stage.BuildSettings(face_model_dir=face_model_dir, out_dir=work / "exact", layout="300w-lp",
                                         jitter=False, posmap_dtype="float32", shard_size=len(names))
    run_task(build_stage.build_shard, build_stage.ShardTask(0, root, tuple(names)), settings)
    with open_shard(work / "exact" / shard_name(0)) as shard:
        ours, tforms = shard["posmap"][:], shard["tform"][:]
    (work / "exact-face3d").mkdir()
    distances = []
    for name, posmap, tform in zip(names, ours, tforms):
        theirs, their_tform = recipe.sample(root / f"{name}.jpg", root / f"{name}.mat", work / "exact-face3d",
                                            jitter=False, rng=None)
        both = (posmap != 0).any(-1) & (theirs != 0).any(-1)
        gap = image_points(posmap, tform)[both] - image_points(theirs, their_tform)[both]
        distances.append(np.hypot(gap[:, 0], gap[:, 1]))
    return np.percentile(np.concatenate(distances), [50, 99, 100])


def profile_shard(task, settings, top=12):
    """Print build's own time per function over one shard, ms per sample."""
    profile = cProfile.Profile()
    profile.runcall(run_task, build_stage.build_shard, task, settings)
    stats = pstats.Stats(profile)
    rows = sorted(((own, f"{Path(file).name}:{line}({name})") for (file, line, name), (_, _, own, _, _)
                   in stats.stats.items()), reverse=True)[:top]
    print(f"where build's time goes (cProfile, one shard of {len(task)}; profiling inflates small calls):")
    for own, where in rows:
        print(f"  {1e3 * own / len(task):7.3f} ms/sample  {where}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--face3d-per-shard", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="also print where build's time goes")
    args = parser.parse_args()
    face_model_dir = builtin_face_model_dir()
    try:
        recipe = Face3dRecipe(load_face3d(FACE3D_CACHE), face_model_dir)
    except Face3dUnavailable as error:
        recipe = None
        print(f"face3d: not timed ({error})")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(SynthSettings(face_model_dir=face_model_dir, out_dir=tmp / "src", layout="300w-lp",
                                 world="face"), args.samples,
                   workers=2, progress=False)
        settings = build_stage.BuildSettings(face_model_dir=face_model_dir, out_dir=tmp / "one", layout="300w-lp",
                                             shard_size=args.shard_size)
        root, tasks = build_stage.plan_shards(tmp / "src", "300w-lp", args.shard_size)
        model = build_stage.worker_morphable_model(face_model_dir)
        print(f"model: {model.n_vertices} vertices, {len(model.triangles)} triangles; {args.samples} samples "
              f"450 x 450 in {len(tasks)} shards of {args.shard_size}; machine: {os.cpu_count()} cores")

        build_times, face3d_times = [], []
        rng = np.random.default_rng(0)
        (tmp / "face3d").mkdir()
        with threadpool_limits(limits=1):
            run_task(build_stage.build_shard, tasks[0], settings)  # warm-up: model, UV table, JIT caches
            if recipe is not None:
                recipe.sample(root / f"{tasks[0].samples[0]}.jpg", root / f"{tasks[0].samples[0]}.mat",
                              tmp / "face3d", jitter=True, rng=rng)
            for task in tasks[1:]:
                start = time.perf_counter()
                run_task(build_stage.build_shard, task, settings)
                build_times.append((time.perf_counter() - start) / len(task))
                for name in task.samples[:args.face3d_per_shard] if recipe is not None else ():
                    start = time.perf_counter()
                    recipe.sample(root / f"{name}.jpg", root / f"{name}.mat", tmp / "face3d", jitter=True, rng=rng)
                    face3d_times.append(time.perf_counter() - start)
            if args.profile:
                profile_shard(tasks[0], build_stage.BuildSettings(face_model_dir=face_model_dir,
                                                                  out_dir=tmp / "profile", layout="300w-lp",
                                                                  shard_size=args.shard_size))
            gaps = compare_maps(recipe, face_model_dir, root, list(tasks[0].samples), tmp) if recipe else None
        one = statistics.median(build_times)

        two_settings = build_stage.BuildSettings(face_model_dir=face_model_dir, out_dir=tmp / "two", layout="300w-lp",
                                                 shard_size=args.shard_size)
        with dask_client(2) as client:
            client.run(worker_uv_table, face_model_dir)  # warm-up: model and UV table in each worker
            client.gather(client.map(run_task, [build_stage.build_shard] * 2, tasks[:2], [two_settings] * 2,
                                     pure=False))
            start = time.perf_counter()
            client.gather(client.map(run_task, [build_stage.build_shard] * (len(tasks) - 1), tasks[1:],
                                     [two_settings] * (len(tasks) - 1), pure=False))
            two_wall = time.perf_counter() - start
        for name in sorted(p.name for p in (tmp / "one").glob("shard-*.h5")):
            assert (tmp / "one" / name).read_bytes() == (tmp / "two" / name).read_bytes(), name

    print(f"{'variant':56s} {'ms/sample':>10s} {'samples/s':>10s}")
    if face3d_times:
        face3d = statistics.median(face3d_times)
        print(f"{'face3d example-8 recipe, 1 core (median per sample)':56s} {face3d * 1e3:10.2f} {1 / face3d:10.1f}")
    print(f"{'build, 1 core (median per sample over shards)':56s} {one * 1e3:10.2f} {1 / one:10.1f}")
    two_per = two_wall / (len(tasks) - 1) / args.shard_size
    print(f"{'build, 2 Dask workers (wall / samples)':56s} {two_per * 1e3:10.2f} {1 / two_per:10.1f}")
    if face3d_times:
        print(f"build over face3d, same run, one core: {face3d / one:.2f}x")
        print(f"position maps vs face3d's (jitter off, float32), image pixels: median {gaps[0]:.4f}, "
              f"99th percentile {gaps[1]:.4f}, max {gaps[2]:.4f}")
    print(f"2 workers over 1: {one * (len(tasks) - 1) * args.shard_size / two_wall:.2f}x; shards identical: yes")


if __name__ == "__main__":
    main()
