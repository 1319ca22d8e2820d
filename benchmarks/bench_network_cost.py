"""What the network passes of one face cost, for PRNet configurations, against a MobileNet-V1 pass at 120 px.

    python benchmarks/bench_network_cost.py [--repeat 7]

One torch thread, batch norms folded and channels_last as `prn-predict`
runs a network (untrained: the time does not depend on the weights). Per
configuration: one pass of one crop (a `views=1` face, or the reframing
pass), one pass of a batch of four (the default's four views), and the
default's network work in all (the two together). The reference is the
MobileNet-V1 of bench_face_cost.py (3DDFA-V2's network) in the same run;
the configurations and the reference take turns within each round, medians
of --repeat rounds after a warm-up round.
"""

import argparse

import torch
from bench_face_cost import in_turn, mobilenet_v1

from prn.model.network import PRNet, count_parameters, flops_per_image, fold_batch_norms

CONFIGURATIONS = {
    "small (shipped): resfcn, base 8, 128 px": {"base": 8, "input_size": 128},
    "resfcn, base 6, 128 px": {"base": 6, "input_size": 128},
    "resfcn, base 4, 128 px": {"base": 4, "input_size": 128},
    "mobilenet, base 8, 128 px": {"base": 8, "backbone": "mobilenet", "input_size": 128},
    "resfcn, base 8, 96 px": {"base": 8, "input_size": 96},
    "tiny: resfcn, base 4, 96 px": {"base": 4, "input_size": 96},
    "resfcn, base 4, 64 px": {"base": 4, "input_size": 64},
}
PASSES = 5     # calls per timing: short calls are timed several at a time


def forward(network, batch, size):
    """A callable making PASSES forward passes of a random (batch, 3, size, size) input."""
    images = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.no_grad():
            for _ in range(PASSES):
                network(images)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    reference = mobilenet_v1().to(memory_format=torch.channels_last)
    runs = {("MobileNet-V1", 1): forward(reference, 1, 120)}
    sizes = {}
    for name, options in CONFIGURATIONS.items():
        network = PRNet(**options).eval()
        sizes[name] = (count_parameters(network), flops_per_image(network))
        folded = fold_batch_norms(network).to(memory_format=torch.channels_last)
        for batch in (1, 4):
            runs[(name, batch)] = forward(folded, batch, options["input_size"])
    times = in_turn(runs, args.repeat, PASSES)
    reference_ms = times[("MobileNet-V1", 1)]
    print(f"one thread, medians of {args.repeat} rounds; MobileNet-V1 120 px: {reference_ms:.2f} ms a pass "
          f"({flops_per_image(reference, 120) / 1e9:.2f} GFLOPs)")
    print(f"{'configuration':42s} {'params':>9s} {'GFLOPs':>7s} {'1 crop':>14s} {'4 views':>14s} "
          f"{'1 + 4 (default)':>16s}")
    for name in CONFIGURATIONS:
        one, four = times[(name, 1)], times[(name, 4)]
        parameters, flops = sizes[name]
        print(f"{name:42s} {parameters:9,d} {flops / 1e9:7.3f} {one:6.2f} ({one / reference_ms:4.2f}x) "
              f"{four:6.2f} ({four / reference_ms:4.2f}x) {one + four:7.2f} ({(one + four) / reference_ms:4.2f}x)")


if __name__ == "__main__":
    main()
