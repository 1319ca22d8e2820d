"""Prediction speed: the network alone and the whole `prn-predict` flow per image, batch 1 and 16.

    python benchmarks/bench_predict.py [--repeat 5] [--images 16]

Networks: the paper's (resfcn, base 16, 256 px) and the mobilenet backbone,
untrained weights (speed does not depend on them). The network is timed on
random 256 x 256 inputs; the flow on synthetic 450 x 450 AFLW2000-3D-format
photos of the built-in model with one given box each: read the JPEG, crop,
network, map back, head pose, colours, OBJ, depth map, overlay, JSON. Face
detection (Haar cascades, where this OpenCV has them) is timed on its own.
Medians over the repeats, after one warm-up run each; glibc set to reuse
freed memory, as prn-predict does (without it the forward pass at batch 16
takes 2.4x as long here: every large activation is a fresh mmap). The
original PRN's published 9.8 ms per image was measured on a GTX 1080 Ti:
another machine, printed only as a reference point.
"""

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from prn.model.prediction.detect import DetectorUnavailable, detect_faces
from prn.model.prediction.flow import predict_images
from prn.model.prediction.predictor import Predictor
from prn.model.training.config import config_from, make_network
from prn.pipeline.datasets import read_image
from prn.pipeline.synthetic.builtin import builtin_model_dir
from prn.pipeline.synthetic.synth import SynthSettings, synthesize
from prn.rendering.util.memory import reuse_freed_memory
from prn.uv_data import builtin_uv_dir

PUBLISHED_MS = 9.8  # the original PRN, per image, GTX 1080 Ti (a different machine)
BOX = [90.0, 90.0, 360.0, 360.0]


def median_seconds(run, repeat):
    run()  # warm-up: first-call allocations, oneDNN primitives, Numba cache loads
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def network_ms(network, batch, repeat):
    """Median ms per image of the forward pass on a random batch."""
    images = torch.rand(batch, 3, 256, 256)

    def run():
        with torch.no_grad():
            network(images)

    return 1000 * median_seconds(run, repeat) / batch


def flow_ms(checkpoint, photos, out, batch, repeat, mesh_format="obj"):
    """Median ms per image of predict_images over the photos, one given box each."""
    predictor = Predictor.from_checkpoint(checkpoint, builtin_uv_dir(), "cpu", batch)
    return 1000 * median_seconds(lambda: predict_images(photos, out, predictor, bbox=BOX, mesh_format=mesh_format,
                                                        report=lambda *args, **kwargs: None), repeat) / len(photos)


def detection_ms(photos, repeat):
    images = [read_image(path) for path in photos]
    try:
        return 1000 * median_seconds(lambda: [detect_faces(image) for image in images], repeat) / len(images)
    except DetectorUnavailable as error:
        print(f"detection: not timed ({error})")
        return None


def row(name, ms):
    return f"{name:38s} {ms:9.1f} {1000 / ms:9.1f} {ms / PUBLISHED_MS:8.1f}x"


def measure(work, repeat, count):
    synthesize(SynthSettings(model_dir=builtin_model_dir(), out_dir=work / "photos", layout="aflw2000"),
               count, progress=False)
    photos = sorted((work / "photos" / "AFLW2000").glob("*.jpg"))
    print(f"CPU, {torch.get_num_threads()} torch threads; medians of {repeat} runs; {len(photos)} photos of 450 x 450")
    print(f"{'':38s} {'ms/image':>9s} {'images/s':>9s} {'vs ' + str(PUBLISHED_MS) + ' ms':>9s}")
    for backbone in ("resfcn", "mobilenet"):
        config = config_from("paper", data=["-"], val="-", out=str(work), uv_dir=str(builtin_uv_dir()),
                             backbone=backbone)
        network = make_network(config).eval()
        checkpoint = work / f"{backbone}.pt"
        torch.save({"model": network.state_dict(), "config": json.dumps(asdict(config))}, checkpoint)
        for batch in (1, 16):
            print(row(f"{backbone} network, batch {batch}", network_ms(network, batch, repeat)))
        for batch in (1, 16):
            print(row(f"{backbone} whole flow, batch {batch}", flow_ms(checkpoint, photos, work / "out", batch,
                                                                       repeat)))
    print(row("resfcn whole flow, batch 16, PLY meshes",
              flow_ms(work / "resfcn.pt", photos, work / "out", 16, repeat, "ply")))
    detection = detection_ms(photos, repeat)
    if detection is not None:
        print(row("face detection (Haar cascades)", detection))
    print(f"'vs {PUBLISHED_MS} ms': this CPU's time over the original PRN's published {PUBLISHED_MS} ms per image "
          "on a GTX 1080 Ti (a different machine, a GPU: a reference point, not a like-for-like comparison)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    reuse_freed_memory()  # as prn-predict does
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as work:
        measure(Path(work), args.repeat, args.images)


if __name__ == "__main__":
    main()
