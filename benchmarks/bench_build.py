"""Speed of `prn-prep build` per sample on one core, and with 2 workers.

    python benchmarks/bench_build.py [--samples 1024] [--shard-size 64]

Inputs: a 300W-LP-like synthetic dataset (450 x 450 JPEGs + .mat) rendered
once from the default built-in model (49,951 vertices, BFM density) into a
temporary folder. Measured in the same run:
- build, one process (BLAS on one thread): median time per sample over shards;
- build on a local Dask cluster of 2 single-threaded workers, after warm-up
  (model loaded, JIT caches read), wall time for all shards;
- baseline, the recipe most PRN users run (face3d's 300W-LP example) made of
  this project's parts: per sample, vertices by one matrix-vector product,
  pose and crop in float64, the UV position map rasterised (not gathered),
  the image warped, and the crop and map saved as per-sample files.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from prn.pipeline import build as build_stage
from prn.pipeline.datasets import read_image, read_params
from prn.pipeline.stage import dask_client, run_task
from prn.pipeline.synthetic.builtin import builtin_model_dir
from prn.pipeline.synthetic.synth import SynthSettings, synthesize
from prn.rendering.geometry.crop import crop_box, crop_transform, positions_in_crop
from prn.rendering.geometry.pose import image_vertices
from prn.rendering.morphable.uv_assets import full_triangles, uv_render_vertices
from prn.rendering.raster.rasterizer import render_colors


def recipe_sample(model, triangles, uv_vertices, root, name, out_dir):
    """The per-sample recipe: gemv, float64 transforms, UV rasterisation, per-sample files."""
    image = read_image(root / f"{name}.jpg")
    params = read_params(root / f"{name}.mat")
    vertices = model.vertices(params.shape, params.exp)
    placed = image_vertices(vertices, params.pose, image.shape[0])
    transform = crop_transform(*crop_box(placed[model.landmarks, :2]))
    crop = cv2.warpAffine(image, transform[:2], (256, 256))
    positions = positions_in_crop(placed, transform)
    posmap = render_colors(uv_vertices, triangles, positions, 256, 256)
    stem = out_dir / name.replace("/", "_")
    cv2.imwrite(str(stem) + ".jpg", crop[..., ::-1])
    np.save(str(stem) + ".npy", posmap)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--baseline-samples", type=int, default=128)
    args = parser.parse_args()
    model_dir = builtin_model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(SynthSettings(model_dir=model_dir, out_dir=tmp / "src", layout="300w-lp"), args.samples,
                   workers=2, progress=False)
        settings = build_stage.BuildSettings(model_dir=model_dir, out_dir=tmp / "one", layout="300w-lp",
                                             shard_size=args.shard_size)
        root, tasks = build_stage.plan_shards(tmp / "src", "300w-lp", args.shard_size)
        model = build_stage.worker_morphable_model(model_dir)
        print(f"model: {model.n_vertices} vertices, {len(model.triangles)} triangles; {args.samples} samples "
              f"450 x 450 in {len(tasks)} shards of {args.shard_size}; machine: {os.cpu_count()} cores")

        run_task(build_stage.build_shard, tasks[0], settings)  # warm-up
        per_sample = []
        for task in tasks[1:]:
            start = time.perf_counter()
            run_task(build_stage.build_shard, task, settings)
            per_sample.append((time.perf_counter() - start) / len(task))
        one = statistics.median(per_sample)
        one_wall = sum(per_sample) * args.shard_size

        two_settings = build_stage.BuildSettings(model_dir=model_dir, out_dir=tmp / "two", layout="300w-lp",
                                                 shard_size=args.shard_size)
        with dask_client(2) as client:
            client.run(build_stage.worker_uv_table, model_dir)  # warm-up: model and UV table in each worker
            client.gather(client.map(run_task, [build_stage.build_shard] * 2, tasks[:2], [two_settings] * 2,
                                     pure=False))
            start = time.perf_counter()
            client.gather(client.map(run_task, [build_stage.build_shard] * (len(tasks) - 1), tasks[1:],
                                     [two_settings] * (len(tasks) - 1), pure=False))
            two_wall = time.perf_counter() - start
        for name in sorted(p.name for p in (tmp / "one").glob("shard-*.h5")):
            assert (tmp / "one" / name).read_bytes() == (tmp / "two" / name).read_bytes(), name

        triangles = full_triangles(model)
        uv_vertices = uv_render_vertices(model.uv, 256)
        (tmp / "recipe").mkdir()
        names = [name for task in tasks for name in task.samples][:args.baseline_samples]
        with threadpool_limits(limits=1):
            recipe_sample(model, triangles, uv_vertices, root, names[0], tmp / "recipe")
            times = []
            for name in names[1:]:
                start = time.perf_counter()
                recipe_sample(model, triangles, uv_vertices, root, name, tmp / "recipe")
                times.append(time.perf_counter() - start)
        recipe = statistics.median(times)

    print(f"{'variant':52s} {'ms/sample':>10s} {'samples/s':>10s}")
    print(f"{'recipe baseline (per sample, 1 core)':52s} {recipe * 1e3:10.2f} {1 / recipe:10.1f}")
    print(f"{'build, 1 core (median over shards)':52s} {one * 1e3:10.2f} {1 / one:10.1f}")
    two_per = two_wall / (len(tasks) - 1) / args.shard_size
    print(f"{'build, 2 Dask workers (wall / samples)':52s} {two_per * 1e3:10.2f} {1 / two_per:10.1f}")
    print(f"speed-up over the recipe per core: {recipe / one:.1f}x; "
          f"2 workers over 1: {one_wall / two_wall:.2f}x; shards identical: yes")


if __name__ == "__main__":
    main()
