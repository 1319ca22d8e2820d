"""Training loader speed per worker process: samples/s with and without augmentation.

    python benchmarks/bench_loader.py [--samples 256]

Builds --samples 300W-LP-like samples of the default built-in model into shards
in a temporary folder (synthesize + build, 2 workers), then times
ShardDataset.__getitem__ in this one process (one DataLoader worker's work:
HDF5 read, augmentation, resize, tensors) in random order, at size 256 and 128,
with augmentation and without (the baseline, same run). Prints the median
samples/s over batches of 16 samples and the ratio. Target: >= 150 samples/s
per worker with augmentation at 256.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import torch

from prn.model.data import ShardDataset
from prn.pipeline.build import BuildSettings, build
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.pipeline.synthetic.synth import SynthSettings, synthesize


def rate(dataset, order, group=16):
    for index in order[:group]:
        dataset[int(index)]  # warm-up: opens the files
    rates = []
    for start in range(0, len(order) - group + 1, group):
        begin = time.perf_counter()
        for index in order[start:start + group]:
            dataset[int(index)]
        rates.append(group / (time.perf_counter() - begin))
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # a DataLoader worker runs single-threaded torch; keep cv2 comparable
    face_model_dir = builtin_face_model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(SynthSettings(face_model_dir=face_model_dir, out_dir=tmp / "raw", layout="300w-lp",
                                 world="face"), args.samples,
                   workers=2, progress=False)
        build(BuildSettings(face_model_dir=face_model_dir, out_dir=tmp / "shards", layout="300w-lp", shard_size=64),
              tmp / "raw", workers=2, progress=False)
        order = np.random.default_rng(0).permutation(len(ShardDataset(tmp / "shards")))
        print(f"{len(order)} samples, one process, median over batches of 16, random order")
        for size in (256, 128):
            plain = rate(ShardDataset(tmp / "shards", size=size, augment=False), order)
            augmented = rate(ShardDataset(tmp / "shards", size=size, augment=True), order)
            print(f"size {size}: augment {augmented:7.1f} samples/s, no augmentation {plain:7.1f} samples/s, "
                  f"ratio {augmented / plain:.2f}")


if __name__ == "__main__":
    main()
