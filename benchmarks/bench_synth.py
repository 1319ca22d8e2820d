"""Speed of `prn-prep synth` per core, on the default (BFM-density) built-in model.

    python benchmarks/bench_synth.py [--chunks 8] [--layout 300w-lp] [--world photo]

One process, BLAS on one thread, files written to a temporary folder. Prints
the median time per sample over chunks of 16 and samples/s per core, and the
ratio to a baseline measured in the same run: the same samples with the
vertices computed one sample at a time (one matrix-vector product each, which
reads the whole basis per sample), the way a naive loop does it.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from threadpoolctl import threadpool_limits

from prn.pipeline.synthetic import synth
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.rendering.morphable.bfm import MorphableModel


def time_chunks(settings, n_chunks, first_chunk):
    times = []
    for chunk in range(first_chunk, first_chunk + n_chunks):
        indices = list(range(chunk * synth.CHUNK_SIZE, (chunk + 1) * synth.CHUNK_SIZE))
        start = time.perf_counter()
        synth.synth_chunk(indices, settings)
        times.append((time.perf_counter() - start) / len(indices))
    return statistics.median(times)


BATCHED_VERTICES = MorphableModel.vertices


def one_at_a_time(self, shape_params, exp_params):
    """The baseline: one matrix-vector product per sample."""
    rows = [BATCHED_VERTICES(self, s, e) for s, e in zip(np.atleast_2d(shape_params), np.atleast_2d(exp_params))]
    return np.stack(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--layout", default="300w-lp", choices=["300w-lp", "aflw2000"])
    parser.add_argument("--world", default="photo", choices=synth.WORLDS)
    args = parser.parse_args()
    face_model_dir = builtin_face_model_dir()
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1):
        settings = synth.SynthSettings(face_model_dir=face_model_dir, out_dir=Path(tmp), layout=args.layout,
                                       world=args.world)
        model = synth.worker_morphable_model(face_model_dir)
        print(f"model: {face_model_dir} ({model.n_vertices} vertices, {len(model.triangles)} triangles), "
              f"{settings.image_size} x {settings.image_size} images, 1 thread")
        synth.synth_chunk(list(range(synth.CHUNK_SIZE)), settings)  # warm-up: JIT caches, assets
        ours = time_chunks(settings, args.chunks, first_chunk=1)
        with mock.patch.object(MorphableModel, "vertices", one_at_a_time):
            baseline = time_chunks(settings, args.chunks, first_chunk=1 + args.chunks)
    print(f"{'variant':40s} {'ms/sample':>10s} {'samples/s/core':>15s}")
    print(f"{'synth (batched vertices)':40s} {ours * 1e3:10.2f} {1 / ours:15.1f}")
    print(f"{'baseline (vertices one sample at a time)':40s} {baseline * 1e3:10.2f} {1 / baseline:15.1f}")
    print(f"speed-up over baseline: {baseline / ours:.2f}x; target 50 samples/s/core: "
          f"{'met' if 1 / ours >= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
