"""Shard storage options: size on disk and random per-sample read time.

    python benchmarks/bench_shard_storage.py SHARD.h5

Rewrites the `image` and `posmap` datasets of one built shard with per-sample
chunks under each compression option, then reads samples in random order (as
a training loader does; the OS cache is warm, so this is the decode cost) and
prints the median read time per sample and the bytes per sample. The
baseline is the uncompressed layout.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

OPTIONS = {"none": {}, "lzf": {"compression": "lzf"}, "gzip-1": {"compression": "gzip", "compression_opts": 1},
           "gzip-1+shuffle": {"compression": "gzip", "compression_opts": 1, "shuffle": True}}


def measure(source, option, tmp):
    path = Path(tmp) / f"{option}.h5"
    with h5py.File(source) as src, h5py.File(path, "w") as dst:
        for name in ("image", "posmap"):
            data = src[name][:]
            dst.create_dataset(name, data=data, chunks=(1,) + data.shape[1:], **OPTIONS[option])
        count = src["image"].shape[0]
    order = np.random.default_rng(0).permutation(count)
    times = {"image": [], "posmap": []}
    with h5py.File(path) as handle:
        for index in order:
            for name in times:
                start = time.perf_counter()
                handle[name][index]
                times[name].append(time.perf_counter() - start)
    return path.stat().st_size / count, {k: statistics.median(v) for k, v in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shard", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {option: measure(args.shard, option, tmp) for option in OPTIONS}
    base_size, base_times = results["none"]
    print(f"{'option':16s} {'kB/sample':>10s} {'size':>6s} {'image ms':>9s} {'posmap ms':>10s} {'read vs none':>13s}")
    for option, (size, times) in results.items():
        total = times["image"] + times["posmap"]
        print(f"{option:16s} {size / 1e3:10.1f} {size / base_size:6.2f} {times['image'] * 1e3:9.3f} "
              f"{times['posmap'] * 1e3:10.3f} {total / (base_times['image'] + base_times['posmap']):12.2f}x")


if __name__ == "__main__":
    main()
