"""Per-face cost of `Predictor` with a given box, one thread, against a MobileNet-V1 forward pass at 120 px.

    python benchmarks/bench_face_cost.py [--repeat 5] [--real ../shared/real]

Faces: the 16 real AFLW2000-3D photos, each with the box of its 68 true
landmarks, one photo per call (`predictor(image, box)`), the shipped network
loaded once. One torch thread, NumPy's BLAS on one thread, as a process
serving one face at a time runs. Settings: the defaults (one reframing
pass, 4 views, fitted landmarks and dense face), without the reframing,
`views=1` with and without it, and `views=1, reframes=0, landmarks="map"`.

The reference is MobileNet-V1 (width 1, 62 outputs) at 120 x 120, the
network of 3DDFA-V2, untrained (its time does not depend on its weights),
NCHW and channels_last, the faster of the two; the ratios divide by it.
Medians of --repeat rounds over the 16 faces after a warm-up round, the
settings and the reference taking turns within each round.

Then the default's time by stage, medians over the same faces: the crop,
the reframing (its one-view network pass, then its landmarks, new crop and
maps moved back), the views' warps and the maps brought back, their network passes, the
landmark fit, the dense face, and the rest (maps to image pixels, pose,
colours, Python).
"""

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import scipy.io
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from prn.model.inference import predict_posmaps
from prn.model.prediction import Predictor
from prn.model.views import view_transform
from prn.pipeline.datasets import read_image

SETTINGS = {"defaults (reframed, 4 views, fit)": {}, "reframes=0": {"reframes": 0}, "views=1": {"views": 1},
            "views=1, reframes=0": {"views": 1, "reframes": 0},
            "views=1, reframes=0, landmarks=map": {"views": 1, "reframes": 0, "landmarks": "map"}}


def mobilenet_v1(width=1.0, outputs=62) -> nn.Module:
    """MobileNet-V1 (Howard et al. 2017): a 3x3 stride-2 convolution, 13 depthwise-separable blocks, pooling."""
    def block(cin, cout, stride):
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    plan = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
            *[(512, 512, 1)] * 5, (512, 1024, 2), (1024, 1024, 1)]
    channels = [int(value * width) for value in (32,)]
    layers = [nn.Conv2d(3, channels[0], 3, 2, 1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)]
    for cin, cout, stride in plan:
        layers += block(int(cin * width), int(cout * width), stride)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(int(1024 * width), outputs)).eval()


def real_faces(real):
    """[(image, box (1, 4))] of the AFLW2000-3D photos, each box that of its 68 true landmarks."""
    faces = []
    for path in sorted((real / "AFLW2000").glob("*.jpg")):
        points = scipy.io.loadmat(path.with_suffix(".mat"))["pt3d_68"][:2].T
        faces.append((read_image(path), np.hstack([points.min(0), points.max(0)])[None]))
    return faces


def in_turn(runs, repeat, count):
    """{name: median ms per face} of callables over `count` faces, taking turns, after one warm-up round."""
    times = {name: [] for name in runs}
    for round_number in range(repeat + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if round_number:
                times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(spent) / count for name, spent in times.items()}


def stages(predictor, faces, repeat):
    """{stage: median ms per face} of the default predictor (module doc)."""
    fitter = predictor.landmark_reader.fitter
    spent = {name: [] for name in ("crop", "reframing: network pass", "reframing: the rest",
                                   "views: warps and maps back", "network passes", "landmark fit", "dense face",
                                   "rest")}
    for round_number in range(repeat + 1):
        for image, box in faces:
            marks = [time.perf_counter()]
            prepared = predictor.prepare(image, box)
            marks.append(time.perf_counter())
            posmaps = predictor.posmaps([prepared])[0]
            marks.append(time.perf_counter())
            start = time.perf_counter()
            predict_posmaps(predictor.network, predictor.config, prepared.crops, batch_size=predictor.batch_size)
            reframe_network = time.perf_counter() - start
            unframed = replace(predictor, reframes=0)
            start = time.perf_counter()
            unframed.posmaps([prepared])
            views_time = time.perf_counter() - start
            viewed = np.stack([cv2_view(prepared.crops[0], view) for view in predictor.views.views])
            start = time.perf_counter()
            predict_posmaps(predictor.network, predictor.config, viewed, batch_size=predictor.batch_size)
            network = time.perf_counter() - start
            start = time.perf_counter()
            fits = fitter.fit_many(posmaps)
            fit = time.perf_counter() - start
            start = time.perf_counter()
            fitter.surfaces(fits)
            surface = time.perf_counter() - start
            start = time.perf_counter()
            predictor.faces(prepared, posmaps)
            faces_time = time.perf_counter() - start
            if round_number:
                spent["crop"].append(marks[1] - marks[0])
                spent["reframing: network pass"].append(reframe_network)
                spent["reframing: the rest"].append(marks[2] - marks[1] - views_time - reframe_network)
                spent["views: warps and maps back"].append(views_time - network)
                spent["network passes"].append(network)
                spent["landmark fit"].append(fit)
                spent["dense face"].append(surface)
                spent["rest"].append(faces_time - fit - surface)
    return {name: 1000 * statistics.median(values) for name, values in spent.items()}


def cv2_view(crop, view):
    return cv2.warpAffine(crop, view_transform(*view), crop.shape[1::-1], flags=cv2.INTER_LINEAR)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "real")
    args = parser.parse_args()
    torch.set_num_threads(1)
    faces = real_faces(args.real)
    if not faces:
        parser.error(f"no AFLW2000 photos under {args.real / 'AFLW2000'}")
    predictors = {name: Predictor.from_checkpoint(**options) for name, options in SETTINGS.items()}
    reference = mobilenet_v1()
    reference_last = mobilenet_v1().to(memory_format=torch.channels_last)
    reference_last.load_state_dict(reference.state_dict())
    image = torch.rand(1, 3, 120, 120)
    image_last = image.to(memory_format=torch.channels_last)

    def forward(network, inputs):
        def run():
            with torch.no_grad():
                for _ in faces:
                    network(inputs)
        return run

    def predicting(predictor):
        return lambda: [predictor(image, box) for image, box in faces]

    runs = {"MobileNet-V1 120 px, NCHW": forward(reference, image),
            "MobileNet-V1 120 px, channels_last": forward(reference_last, image_last),
            **{name: predicting(predictor) for name, predictor in predictors.items()}}
    with threadpool_limits(1):
        times = in_turn(runs, args.repeat, len(faces))
        reference_ms = min(times["MobileNet-V1 120 px, NCHW"], times["MobileNet-V1 120 px, channels_last"])
        print(f"one thread, {len(faces)} real faces with given boxes, medians of {args.repeat} rounds")
        print(f"{'':36s} {'ms/face':>8s} {'x MobileNet-V1':>15s}")
        for name, ms in times.items():
            print(f"{name:36s} {ms:8.1f} {ms / reference_ms:15.2f}")
        print("the defaults by stage:")
        for name, ms in stages(predictors["defaults (reframed, 4 views, fit)"], faces, args.repeat).items():
            print(f"  {name:34s} {ms:8.1f}")


if __name__ == "__main__":
    main()
