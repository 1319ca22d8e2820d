"""Prediction speed: the network alone and the whole `prn-predict` flow per image, batch 1 and 16.

    python benchmarks/bench_predict.py [--repeat 5] [--images 16] [--compare-only]

Networks: the paper's (resfcn, base 16, 256 px) and the mobilenet backbone,
untrained weights (speed does not depend on them). The network is timed on
random 256 x 256 inputs; the flow on synthetic 450 x 450 AFLW2000-3D-format
photos of the built-in model with one given box each: read the JPEG, crop,
network, map back, head pose, colours, OBJ, depth map, overlay, JSON. Face
detection (RetinaFace, prn-predict's default) is timed on its own.
Medians over the repeats, after one warm-up run each; glibc set to reuse
freed memory, as prn-predict does (without it the forward pass at batch 16
takes 2.4x as long here: every large activation is a fresh mmap). The
original PRN's published 9.8 ms per image was measured on a GTX 1080 Ti:
another machine, printed only as a reference point.

Then a same-run comparison, its runs taken in turn round after round so
that a busy machine slows them alike, batch 16, for the paper network and
the small preset's (128 px, the shipped network): the network alone (NCHW;
channels_last; as prn-predict runs it, batch norms folded; ONNX Runtime
where installed), the whole flow with a given box and one view (PLY and
OBJ meshes, not reframed; the untrained paper network's landmarks read
from its map, the shipped network's fitted), and for the shipped network 2
and 4 views, not reframed, and 4 views reframed once,
prn-predict's defaults with each detector (RetinaFace, the default, and
Haar) searching each photo, and a video of the photos' frames (detector,
no meshes). Each flow run writes
into a new folder, as a run on new photos does.
--compare-only prints just that.
"""

import argparse
import copy
import itertools
import json
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import torch

from prn.model.network_config import make_network
from prn.model.prediction.detect import detect_faces
from prn.model.prediction.flow import predict_images
from prn.model.prediction.predictor import Predictor
from prn.model.prediction.video import predict_video
from prn.model.training.config import config_from
from prn.pipeline.datasets import read_image
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.pipeline.synthetic.synth import SynthSettings, synthesize
from prn.rendering.util.errors import DetectorUnavailable
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
    predictor = Predictor.from_checkpoint(checkpoint, builtin_uv_dir(), "cpu", batch, views=1)
    return 1000 * median_seconds(lambda: predict_images(photos, out, predictor, bbox=BOX, mesh_format=mesh_format,
                                                        report=lambda *args, **kwargs: None), repeat) / len(photos)


def detection_ms(photos, repeat):
    images = [read_image(path) for path in photos]
    try:
        return 1000 * median_seconds(lambda: [detect_faces(image) for image in images], repeat) / len(images)
    except DetectorUnavailable as error:
        print(f"detection: not timed ({error})")
        return None


def alternating_ms(runs, repeat, count):
    """{name: median ms per image} of callables each handling `count` images, run in turn `repeat` rounds."""
    for run in runs.values():
        run()  # warm-up
    times = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(values) / count for name, values in times.items()}


def fresh_folders(work, name):
    """A callable giving a new output folder under work on each call: files are written new, as for new photos.

    (Replacing an existing file costs more on some file systems: ext4 flushes a file renamed over another.)
    """
    count = itertools.count()
    return lambda: work / f"{name}-{next(count)}"


def onnx_runner(network, size, work):
    """A callable running the network through ONNX Runtime on a (B, 3, size, size) float32 array; None without it."""
    try:
        import onnxruntime
    except ImportError:
        print("ONNX Runtime: not timed (pip install 'prn-toolkit[onnx]')")
        return None
    work.mkdir(parents=True, exist_ok=True)
    path = work / "network.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (torch.zeros(1, 3, size, size),), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["posmap"],
                          dynamic_axes={"image": {0: "batch"}, "posmap": {0: "batch"}})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"image": images})


def preset_runs(preset, work, photos, video) -> dict:
    """{name: callable over all photos} of one preset's network, for alternating_ms: the paper's untrained (its
    maps are flat, so its landmarks are read from the map), the small preset's the shipped network."""
    config = config_from(preset, data=["-"], val="-", out=str(work), uv_dir=str(builtin_uv_dir()))
    network = make_network(config).eval()
    if preset == "small":
        checkpoint, landmarks = None, "fit"
    else:
        checkpoint, landmarks = work / f"compare-{preset}.pt", "map"
        torch.save({"model": network.state_dict(), "config": json.dumps(asdict(config))}, checkpoint)
    predictor = Predictor.from_checkpoint(checkpoint, builtin_uv_dir(), "cpu", 16, views=1, landmarks=landmarks,
                                          reframes=0)
    images = torch.rand(16, 3, config.size, config.size)
    images_last = images.to(memory_format=torch.channels_last)
    network_last = copy.deepcopy(network).to(memory_format=torch.channels_last)
    batches = len(photos) // 16
    quiet = {"report": lambda *args, **kwargs: None}

    def forward(model, inputs):
        with torch.no_grad():
            for _ in range(batches):
                model(inputs)

    name = f"{preset} ({config.size} px)"
    runs = {
        f"{name}: network alone, NCHW": lambda: forward(network, images),
        f"{name}: network alone, channels_last": lambda: forward(network_last, images_last),
        f"{name}: network alone, as predicted (+ norms folded)": lambda: forward(predictor.network, images_last),
    }
    onnx = onnx_runner(network, config.size, work / preset)
    if onnx is not None:
        array = images.numpy()
        runs[f"{name}: network alone, ONNX Runtime"] = lambda: [onnx(array) for _ in range(batches)]
    ply, obj = fresh_folders(work, f"{preset}-ply"), fresh_folders(work, f"{preset}-obj")
    runs[f"{name}: whole flow, given box, PLY"] = lambda: predict_images(photos, ply(), predictor, bbox=BOX,
                                                                          mesh_format="ply", **quiet)
    runs[f"{name}: whole flow, given box, OBJ"] = lambda: predict_images(photos, obj(), predictor, bbox=BOX, **quiet)
    if preset == "small":
        for views, reframes in ((2, 0), (4, 0), (4, 1)):
            viewed = Predictor.from_checkpoint(checkpoint, builtin_uv_dir(), "cpu", 16, views=views,
                                               reframes=reframes)
            folders = fresh_folders(work, f"{preset}-views{views}-reframes{reframes}")
            runs[f"{name}: whole flow, given box, PLY, {views} views, reframes {reframes}"] = \
                lambda viewed=viewed, folders=folders: predict_images(photos, folders(), viewed, bbox=BOX,
                                                                      mesh_format="ply", **quiet)
        default = Predictor.from_checkpoint()
        frames = fresh_folders(work, "video")
        for detector in ("retinaface", "haar"):
            folders, searching = fresh_folders(work, detector), replace(default, detector=detector)
            runs[f"{name}: prn-predict's defaults, {detector} detector, PLY"] = \
                lambda folders=folders, searching=searching: predict_images(photos, folders(), searching,
                                                                            mesh_format="ply", **quiet)
        runs[f"{name}: video, prn-predict's defaults"] = lambda: predict_video(video, frames(), "photos", default)
    return runs


def compare(work, photos, repeat):
    """The same-run comparison (module doc), printed as ms/image and images/s."""
    video = work / "photos.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (450, 450))
    for path in photos:
        writer.write(cv2.imread(str(path)))
    writer.release()
    runs = {**preset_runs("paper", work, photos, video), **preset_runs("small", work, photos, video)}
    print(f"same run, in turn: batch 16, {len(photos)} photos of 450 x 450, medians of {repeat} rounds")
    for name, ms in alternating_ms(runs, repeat, len(photos)).items():
        print(row(name, ms))


def row(name, ms):
    return f"{name:56s} {ms:9.1f} {1000 / ms:9.1f} {ms / PUBLISHED_MS:8.1f}x"


def measure(work, repeat, count, compare_only=False):
    synthesize(SynthSettings(face_model_dir=builtin_face_model_dir(), out_dir=work / "photos", layout="aflw2000"),
               count, progress=False)
    photos = sorted((work / "photos" / "AFLW2000").glob("*.jpg"))
    print(f"CPU, {torch.get_num_threads()} torch threads; medians of {repeat} runs; {len(photos)} photos of 450 x 450")
    if compare_only:
        compare(work, photos, repeat)
        return
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
    compare(work, photos, repeat)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--compare-only", action="store_true", help="only the same-run comparison")
    args = parser.parse_args()
    reuse_freed_memory()  # as prn-predict does
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as work:
        measure(Path(work), args.repeat, args.images, args.compare_only)


if __name__ == "__main__":
    main()
