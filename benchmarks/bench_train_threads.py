"""Training samples/s of the tiny preset through the real loader: the earlier set-up vs prn-train's.

    python benchmarks/bench_train_threads.py [--samples 256] [--steps 30] [--repeat 3]

Builds --samples 300W-LP-like samples of the built-in model into shards in a
temporary folder, then trains the tiny preset (batch 16, one DataLoader
worker, as prn-demo runs it) for --steps steps in a child process per case and
prints the median samples/s of the steps after the first few:
  * before: torch's default intra-op threads (one per core), NCHW tensors,
    128 px, torch's default Adam and glibc's default allocator settings (the
    tiny preset's earlier set-up), and
  * after: prn-train's set-up: the thread policy
    (prn.model.training.threads.cpu_threads: the cores left after the loader
    workers), channels_last tensors, the preset's size, the fused Adam and
    reuse_freed_memory,
each alone and beside one CPU-bound process (a busy loop), in the same run.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY = "while True: pass"
SETUPS = {
    "before": {"prn_train": False, "size": 128},
    "after": {"prn_train": True, "size": None},
}


def child(shards, uv_dir, setup, workers, steps):
    import torch

    from prn.model.data import ShardDataset, make_loader
    from prn.model.loss import weighted_loss
    from prn.model.network_config import make_network
    from prn.model.training.config import config_from
    from prn.model.training.threads import limit_cpu_threads
    from prn.rendering.morphable.uv_assets import load_uv_assets
    from prn.rendering.util.memory import reuse_freed_memory

    chosen = SETUPS[setup]
    if chosen["prn_train"]:
        limit_cpu_threads(workers)
        reuse_freed_memory()
    config = config_from("tiny", data=(shards,), val=shards, out="", uv_dir=uv_dir, size=chosen["size"])
    layout = torch.channels_last if chosen["prn_train"] else torch.contiguous_format
    dataset = ShardDataset([shards], size=config.size, augment=True, seed=0)
    network = make_network(config).to(memory_format=layout)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr, fused=chosen["prn_train"] or None)
    weights = torch.tensor(load_uv_assets(uv_dir).weight_mask(config.weights, config.size))
    rates, epoch = [], 0
    while len(rates) < steps:
        loader = make_loader(dataset, config.batch_size, workers=workers, seed=0, epoch=epoch, drop_last=True)
        start = time.perf_counter()
        for batch in loader:
            prediction = network(batch["image"].to(memory_format=layout))
            loss = weighted_loss(prediction, batch["target"], weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            now = time.perf_counter()
            rates.append(len(batch["image"]) / (now - start))
            start = now
            if len(rates) == steps:
                break
        epoch += 1
    print(json.dumps({"threads": torch.get_num_threads(), "size": config.size, "rate": statistics.median(rates[3:])}))


def measure(shards, uv_dir, setup, workers, steps, busy):
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        out = subprocess.run([sys.executable, __file__, "--child", str(shards), str(uv_dir), setup,
                              str(workers), str(steps)], capture_output=True, text=True, check=True).stdout
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    return json.loads(out.splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        shards, uv_dir, setup, workers, steps = sys.argv[2:7]
        child(shards, uv_dir, setup, int(workers), int(steps))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from prn.model.training.threads import cpu_threads, usable_cores
    from prn.pipeline.build import BuildSettings, build
    from prn.pipeline.synthetic.builtin import builtin_face_model_dir
    from prn.pipeline.synthetic.synth import SynthSettings, synthesize
    from prn.uv_data import builtin_uv_dir

    workers = 1
    face_model_dir = builtin_face_model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(SynthSettings(face_model_dir=face_model_dir, out_dir=tmp / "raw", layout="300w-lp",
                                 world="face"), args.samples,
                   workers=2, progress=False)
        build(BuildSettings(face_model_dir=face_model_dir, out_dir=tmp / "shards", layout="300w-lp", shard_size=64),
              tmp / "raw", workers=2, progress=False)
        print(f"{usable_cores()} cores, tiny preset, batch 16, {workers} loader worker, median samples/s over "
              f"{args.steps} steps, median of {args.repeat} runs; after: {cpu_threads(workers)} torch threads")
        print(f"{'':24s} {'before':>10s} {'after':>10s} {'ratio':>6s}")
        for busy in (False, True):
            rates = {setup: statistics.median(
                measure(tmp / "shards", builtin_uv_dir(), setup, workers, args.steps, busy)["rate"]
                for _ in range(args.repeat)) for setup in SETUPS}
            label = "beside a busy process" if busy else "alone"
            print(f"{label:24s} {rates['before']:10.1f} {rates['after']:10.1f} {rates['after'] / rates['before']:6.2f}")


if __name__ == "__main__":
    main()
