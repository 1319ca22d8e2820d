"""The dense face's shape: which surface, and where the network map's ripple comes from, on validation shards.

    python benchmarks/bench_dense_face.py --data VAL_SHARDS [--checkpoint shipped] [--count 60]

For the first `count` samples: the normal angle and nose depth ratio
(prn.model.evaluation.surface; docs/formats.md section 7) of the true map
through the network's UV grid and back, of the true map smoothed, of the
network's map (1 and 4 views) as it is and smoothed, of the fitted model at
several regularizations, of the fitted model plus the map's smoothed
residual, and of the placed mean face. Then the spectrum of the network's
own map error on its UV grid (before it is resized to 256): the error power
at periods of 2 and 4 pixels along the UV axes over the power at the
neighbouring frequencies, and the share of the error at periods below 8
pixels, also over the true face's own power there. The tables of
docs/prediction.md, "The dense face", are this script's output.
"""

import argparse

import cv2
import numpy as np
import torch

from prn.model.checkpoint import load_trained
from prn.model.evaluation.evaluate import EvalShards
from prn.model.evaluation.surface import SurfaceMeasure, placed_mean_faces
from prn.model.inference import FaceSmoother, crops_to_tensor
from prn.model.network import POSMAP_SCALE
from prn.model.views import Views
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.map_fit import MapFitter
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.uv_data import builtin_uv_dir

REGULARIZATIONS = (1_000.0, 10_000.0, 100_000.0, 1_000_000.0)
WINDOW = slice(32, 96)     # the central 64 x 64 of a 128 UV grid: inside the face


def sample_arrays(folder, count):
    """(crops (n, 256, 256, 3) uint8, true maps (n, 256, 256, 3) float32) of the first `count` samples."""
    test_set = EvalShards(folder)
    rows = np.arange(min(count, len(test_set)))
    maps = []
    for index in rows:
        shard, row = test_set.shards.locate(int(index))
        maps.append(test_set.shards.read(shard, ("posmap",), row)["posmap"])
    return test_set.images(rows), np.stack(maps).astype(np.float32)


def ripple_spectrum(network, config, crops, truth):
    """{period: power on the UV axes over the neighbouring power}, the error's share at periods < 8 px, and that
    share over the true map's, of the network's own UV grid."""
    with torch.no_grad():
        maps = network(crops_to_tensor(crops, config.size)).numpy().transpose(0, 2, 3, 1) * POSMAP_SCALE
    side = maps.shape[1]
    small = np.stack([cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA) for face in truth])
    hann = np.outer(np.hanning(64), np.hanning(64))[None, :, :, None]

    def power(maps):
        window = maps[:, WINDOW, WINDOW]
        window = window - window.mean(axis=(1, 2), keepdims=True)
        return (np.abs(np.fft.fft2(window * hann, axes=(1, 2))) ** 2).mean(axis=(0, 3))

    error, true = power(maps - small), power(small)
    frequencies = np.fft.fftfreq(64)

    def on_axes(frequency):
        column = np.argmin(np.abs(frequencies - frequency))
        return (error[0, column] + error[column, 0]) / 2

    ratios = {2: on_axes(-0.5) / on_axes(-0.45), 4: on_axes(0.25) / on_axes(0.225)}
    u, v = np.meshgrid(np.abs(frequencies), np.abs(frequencies))
    fine = np.maximum(u, v) >= 0.125
    return ratios, error[fine].sum() / error.sum(), error[fine].sum() / true[fine].sum()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoint", default="shipped")
    parser.add_argument("--count", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(2)
    trained = load_trained(None if args.checkpoint == "shipped" else args.checkpoint)
    uv = load_uv_assets(builtin_uv_dir(), 256)
    model = load_morphable_model(builtin_face_model_dir())
    crops, truth = sample_arrays(args.data, args.count)
    measure = SurfaceMeasure(uv.face_ind, uv.triangles, uv.kpt, uv.size)
    true_faces = truth.reshape(len(truth), -1, 3)[:, uv.face_ind].astype(np.float64)

    def row(name, maps=None, faces=None):
        faces = maps.reshape(len(maps), -1, 3)[:, uv.face_ind] if faces is None else faces
        scores = measure.scores(faces, true_faces)
        print(f"| {name} | {scores['normal_angle'].mean():.2f} | {scores['nose_depth_ratio'].mean():.2f} |")

    def smoothed(maps, sigma):
        smoother = FaceSmoother(uv.face_ind, sigma)
        return np.stack([smoother(face) for face in maps])

    side = trained.config.size
    print(f"{len(truth)} samples of {args.data}; checkpoint {args.checkpoint}\n")
    print("| surface | normal angle, degrees | nose depth ratio |\n| --- | --- | --- |")
    through = np.stack([cv2.resize(cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA), (256, 256),
                                   interpolation=cv2.INTER_LINEAR) for face in truth])
    row(f"the true map through the {side} px grid and back", through)
    row("the true map smoothed 4 px", smoothed(truth, 4.0))
    maps = {views: Views.of(views, uv).predict(trained.network, trained.config, crops) for views in (1, 4)}
    for views, predicted in maps.items():
        row(f"the network's map, {views} view(s)", predicted)
        for sigma in (2.0, 4.0, 8.0):
            row(f"the same, smoothed {sigma:g} px", smoothed(predicted, sigma))
    for regularization in REGULARIZATIONS:
        fitter = MapFitter(model, uv.face_ind, regularization=regularization)
        fitted = fitter.surfaces(fitter.fit_many(maps[4]))
        row(f"the fitted model, 4 views, regularization {regularization:g}", faces=fitted)
        if regularization == 10_000.0:
            residual = np.zeros_like(maps[4]).reshape(len(truth), -1, 3)
            residual[:, uv.face_ind] = maps[4].reshape(len(truth), -1, 3)[:, uv.face_ind] - fitted
            for sigma in (4.0, 8.0):
                kept = smoothed(residual.reshape(maps[4].shape), sigma).reshape(len(truth), -1, 3)[:, uv.face_ind]
                row(f"the same plus the map's residual smoothed {sigma:g} px", faces=fitted + kept)
    row("the placed mean face", faces=placed_mean_faces(uv.canonical, true_faces))
    ratios, share, over_truth = ripple_spectrum(trained.network, trained.config, crops, truth)
    print(f"\nerror of the network's {side} px map, central 64 x 64: power at period 2 px {ratios[2]:.2f} and "
          f"4 px {ratios[4]:.2f} times the neighbouring frequencies'; periods below 8 px hold {100 * share:.1f} % "
          f"of it, {over_truth:.2f} times the true map's power there")


if __name__ == "__main__":
    main()
