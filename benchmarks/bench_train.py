"""Training throughput (images/s) of the `paper` and `tiny` presets: forward, loss, backward, Adam step.

    python benchmarks/bench_train.py [--steps 5]

Random inputs at each preset's resolution (the data loader is measured by
bench_loader.py). On a GPU each preset is timed in fp32 and with bf16
autocast + channels_last in the same run, and the ratio printed; on a CPU
fp32 only (bf16 autocast on CPUs is not what training there would use).
Like `prn-train`, the timed process lets glibc recycle freed memory
(prn.rendering.util.memory.reuse_freed_memory); on a CPU the same steps are also
timed in a child process with glibc's defaults, the baseline of the ratio.
"""

import argparse
import statistics
import subprocess
import sys
import time

import torch

from prn.model.loss import weighted_loss
from prn.model.network_config import make_network
from prn.model.training.config import PRESETS, config_from
from prn.rendering.util.memory import reuse_freed_memory


def images_per_second(preset, device, mixed, steps, batch_size):
    config = config_from(preset, data=(), val="", out="", uv_dir="")
    network = make_network(config).to(device)
    size = config.size
    if mixed:
        network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
    image = torch.rand(batch_size, 3, size, size, device=device)
    target = torch.rand(batch_size, 3, size, size, device=device)
    if mixed:
        image = image.to(memory_format=torch.channels_last)
    weights = torch.ones(size, size, device=device)
    times = []
    for step in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed):
            prediction = network(image)
        loss = weighted_loss(prediction.float(), target, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--glibc-default", action="store_true", help="Time one preset (--preset) with glibc's "
                        "default allocator settings and print images/s (the baseline run).")
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.glibc_default:
        print(images_per_second(args.preset, device, False, args.steps, PRESETS[args.preset]["batch_size"]))
        return
    reuse_freed_memory()
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; median of {args.steps} steps")
    if device.type == "cuda":
        print(f"{'preset':8s} {'batch':>5s} {'fp32 img/s':>11s} {'bf16+cl img/s':>14s} {'ratio':>6s}")
    else:
        print(f"{'preset':8s} {'batch':>5s} {'fp32 img/s':>11s} {'glibc default':>14s} {'ratio':>6s}")
    for preset in ("tiny", "paper"):
        batch = PRESETS[preset]["batch_size"]
        fp32 = images_per_second(preset, device, False, args.steps, batch)
        if device.type == "cuda":
            other = images_per_second(preset, device, True, args.steps, batch)
            print(f"{preset:8s} {batch:5d} {fp32:11.1f} {other:14.1f} {other / fp32:6.2f}")
        else:
            baseline = float(subprocess.run([sys.executable, __file__, "--glibc-default", "--preset", preset,
                                             "--steps", str(args.steps)], capture_output=True, text=True,
                                            check=True).stdout.split()[-1])
            print(f"{preset:8s} {batch:5d} {fp32:11.1f} {baseline:14.1f} {fp32 / baseline:6.2f}")


if __name__ == "__main__":
    main()
