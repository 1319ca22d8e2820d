"""`prn-eval real`: a checkpoint scored on real AFLW2000-3D photos, the mean-face baseline beside it.

In the output folder OUT:
* shards/: the photos (AFLW2000/imageNNNNN.jpg + .mat, docs/formats.md
  section 4) built by `prn-prep build`'s API, layout aflw2000, no jitter,
  with the morphable model their parameters were fitted with; a rerun keeps
  the finished shards (build's resume);
* network/: `prn-eval`'s files for the checkpoint, ground truth `pt3d_68`;
* mean-face/: the same for the mean-face baseline (predictions.npz: the
  mean position map of the network's training shards, read at the network's
  uv_kpt_ind and placed by each test crop);
* uv/: only for a checkpoint of another model than the photos' (below);
* summary.json, written last (removed when a run starts): both NMEs, the
  counts and the inputs.

A checkpoint trained for another model than the one the photos' shards are
built with (the built-in synthetic model, say) predicts position maps in
its own UV layout. Its 68 landmarks are read with its own UV assets, taken
back to the photo through the shard's crop and scored against `pt3d_68`;
these are comparable across models. Head pose and dense NME need the
shards' mesh and are left out; the scoring reads the shards' model's UV
assets, written to OUT/uv.

Training or baseline shards built from the test photos themselves are
refused; validation shards built from them give a note (best.pt was then
selected on the test set).
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prn.model.evaluation.baseline import write_mean_face_predictions
from prn.model.evaluation.evaluate import EvalShards, check_views, run_evaluation
from prn.model.landmarks import DEFAULT_LANDMARKS, LandmarkReader
from prn.model.uv_choice import choose_uv, shard_fingerprint, short
from prn.model.views import Views
from prn.pipeline.build import BuildSettings, build, dataset_root
from prn.pipeline.shards import MANIFEST, UV_SIZE, load_manifest
from prn.pipeline.stage import worker_morphable_model
from prn.rendering.geometry.crop import crop_to_image
from prn.rendering.morphable.uv_assets import MODEL_RECORD, compute_uv_assets, load_uv_assets, write_uv_assets
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError

SHARDS, NETWORK, MEAN_FACE, UV, SUMMARY = "shards", "network", "mean-face", "uv", "summary.json"
PREDICTIONS = "predictions.npz"
LAYOUT = "AFLW2000/imageNNNNN.jpg + .mat with pt3d_68"


@dataclass(frozen=True)
class RealPhotoRun:
    """What `prn-eval real` scores, and where."""

    photos: Path                 # an AFLW2000 folder (or one holding it)
    model_dir: Path              # the morphable model the photos' parameters were fitted with
    checkpoint: Path
    out: Path
    baseline: tuple = ()         # training shard folders of the mean face; (): the checkpoint's training data
    uv_dir: Path | None = None   # the checkpoint's model's UV assets; None: the folder it was trained with
    batch_size: int = 16
    device: str = "cpu"
    workers: int = 1
    views: int = 1               # the network's maps averaged over that many views of each crop (model/views.py)
    landmarks: str = DEFAULT_LANDMARKS   # how the network's landmarks are read from its maps (model/landmarks.py)
    fit_model: Path | None = None        # the network's model folder for "fit"; None: the built-in when of it


def photo_folder(photos) -> Path:
    """The folder holding the AFLW2000-3D samples; InputError (one line) when absent or without .mat files."""
    photos = Path(photos)
    if not photos.is_dir():
        raise InputError(f"{photos}: no such folder (expected AFLW2000-3D photos: {LAYOUT})")
    root = dataset_root(photos, "aflw2000")
    if not any(path.suffix.lower() == ".mat" and path.is_file() for path in root.iterdir()):
        raise InputError(f"{root}: no .mat files, so no ground truth (expected AFLW2000-3D photos: {LAYOUT})")
    return root


def evaluate_real_photos(run: RealPhotoRun, note=None) -> dict:
    """Build the photos' shards (when missing), score the checkpoint and the mean face; return summary.json's dict.

    note: called with one-line remarks (UV assets taken on trust, landmarks
    only, validation on the test photos).
    """
    from prn.model.checkpoint import load_trained  # torch loads only when a network runs

    check_views(run.views, run.checkpoint)
    note = note or (lambda line: None)
    root = photo_folder(run.photos)
    out = Path(run.out)
    trained = load_trained(run.checkpoint, run.device)
    owner = f"the checkpoint {run.checkpoint} is of model {short(trained.model_fingerprint)}"
    network_uv = choose_uv(run.uv_dir, trained.model_fingerprint, owner, recorded=trained.config.uv_dir,
                           size=UV_SIZE)
    if network_uv.note:
        note(network_uv.note)
    model = network_uv.model_fingerprint   # the checkpoint's, else that of the UV assets it was trained with
    baseline = baseline_folders(run, trained.config.data, model)
    check_unseen(root, out / SHARDS, trained.config, baseline, run.checkpoint, note)
    (out / SUMMARY).unlink(missing_ok=True)   # present only when the last run finished

    built = build(BuildSettings(model_dir=Path(run.model_dir), out_dir=out / SHARDS, layout="aflw2000",
                                jitter=False), root, workers=run.workers)
    shards = shard_fingerprint(load_manifest(out / SHARDS))
    same_model = model is None or shards is None or model == shards
    if same_model:
        scoring_uv = network_uv.uv.folder
        (out / NETWORK / PREDICTIONS).unlink(missing_ok=True)   # of an earlier checkpoint of another model
        network = run_evaluation(out / SHARDS, out / NETWORK, checkpoint=run.checkpoint,
                                 batch_size=run.batch_size, device=run.device, uv_dir=scoring_uv, views=run.views,
                                 landmarks=run.landmarks, fit_model=run.fit_model, progress=note)
    else:
        note(f"{run.checkpoint} is of model {short(model)}, the photos' shards of model {short(shards)}: "
             "scoring its 68 landmarks only (no head pose, no dense NME)")
        scoring_uv = shards_model_uv(run.model_dir, out / UV, shards)
        reader = LandmarkReader.of(run.landmarks, network_uv.uv, model, run.fit_model, recorded=trained.config.data)
        write_network_landmarks(trained, reader, out / SHARDS, out / NETWORK / PREDICTIONS,
                                run.batch_size, run.device, run.views)
        network = run_evaluation(out / SHARDS, out / NETWORK, predictions=out / NETWORK / PREDICTIONS,
                                 uv_dir=scoring_uv)
    write_mean_face_predictions(baseline, out / SHARDS, network_uv.uv.folder, out / MEAN_FACE / PREDICTIONS)
    mean_face = run_evaluation(out / SHARDS, out / MEAN_FACE, predictions=out / MEAN_FACE / PREDICTIONS,
                               uv_dir=scoring_uv)
    summary = {
        "photos": str(_absolute(root)),
        "model": str(_absolute(run.model_dir)),
        "checkpoint": str(_absolute(run.checkpoint)),
        "baseline_shards": [str(_absolute(folder)) for folder in baseline],
        "views": run.views,
        "landmarks": network["source"]["landmarks"] if same_model else reader.reading,
        "fit_model": network["source"]["fit_model"] if same_model else reader.fitted_folder,
        "count": network["count"],
        "rejected": len(built.rejects),
        "bins": network["bins"],
        "scored": "full" if same_model else "landmarks",
        "network": _headline(network, out / NETWORK),
        "mean_face": _headline(mean_face, out / MEAN_FACE),
    }
    with atomic_path(out / SUMMARY) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def summary_line(summary, out) -> str:
    """The one line `prn-eval real` prints: 2D bbox NME of the network and the mean face, all and balanced."""
    network, mean_face = summary["network"]["nme2d_bbox"], summary["mean_face"]["nme2d_bbox"]
    rejected = f", {summary['rejected']} rejected" if summary["rejected"] else ""
    views = f" ({summary['views']} views)" if summary.get("views", 1) != 1 else ""
    return (f"{summary['count']} real photos{rejected}: 2D bbox NME of the network{views} all {network['all']:.2f} %, "
            f"balanced {network['balanced']:.2f} %; mean face all {mean_face['all']:.2f} %, "
            f"balanced {mean_face['balanced']:.2f} %; summary: {Path(out) / SUMMARY}")


def _headline(report, folder):
    return {"nme2d_bbox": _all_balanced(report["nme2d_bbox"]), "nme3d_bbox": _all_balanced(report["nme3d_bbox"]),
            "report": str(Path(folder) / "report.md")}


def _all_balanced(by_yaw):
    return {"all": float(by_yaw["all"]), "balanced": float(by_yaw["balanced"])}


def _absolute(path) -> Path:
    return Path(os.path.abspath(path))


# ---------------------------------------------------------------------------
# Checks of the inputs


def baseline_folders(run: RealPhotoRun, trained_on, model) -> tuple:
    """The mean face's shard folders: --baseline-shards, else the checkpoint's training data (`trained_on`).

    InputError (one line) when there are none, one is missing, or one is of
    another model than the checkpoint (`model`, a fingerprint or None).
    """
    folders = tuple(Path(folder) for folder in (run.baseline or trained_on))
    if not folders:
        raise InputError(f"{run.checkpoint}: records no training data; give --baseline-shards")
    for folder in folders:
        if not run.baseline and not (folder / MANIFEST).is_file():
            raise InputError(f"{folder}: no shard folder there (the training data {run.checkpoint} records); "
                             "give --baseline-shards")
        theirs = shard_fingerprint(load_manifest(folder))
        if theirs and model and theirs != model:
            raise InputError(f"{folder}: shards of model {short(theirs)}, but the checkpoint {run.checkpoint} is of "
                             f"model {short(model)}: the mean face comes from the network's training shards")
    return folders


def check_unseen(root, test_shards, config, baseline, checkpoint, note):
    """Refuse training or baseline shards built from the test photos; a note for validation shards built from them.

    A shard folder counts as built from them when it is the test shard folder
    or its manifest records the photos' folder as its source.
    """
    for role, folders in (("training", config.data), ("baseline", baseline)):
        for folder in folders:
            if _built_from(folder, root, test_shards):
                raise InputError(f"{folder}: built from the test photos {root}; a real-photo score needs {role} "
                                 "data without them")
    if config.val and _built_from(config.val, root, test_shards):
        note(f"{checkpoint} was validated on {config.val}, built from these photos: choosing best.pt on "
             "it selects on the test set")


def _built_from(folder, root, test_shards) -> bool:
    folder = Path(folder)
    if _same(folder, test_shards):
        return True
    if not (folder / MANIFEST).is_file():
        return False
    source = load_manifest(folder).get("inputs", {}).get("root")
    return isinstance(source, str) and _same(source, root)


def _same(first, second) -> bool:
    return os.path.realpath(first) == os.path.realpath(second)


# ---------------------------------------------------------------------------
# A checkpoint of another model than the photos' shards


def write_network_landmarks(trained, reader: LandmarkReader, test_folder, path, batch_size, device, views=1):
    """Write a `prn-eval --predictions` npz of the network's 68 landmarks on the test crops.

    name (N,) and kpt68 (N, 68, 3) float32 in original image coordinates: each
    predicted position map (the mean of `views` views, model/views.py) read
    by `reader` (model/landmarks.py) and taken back through the shard's tform.
    """
    test_set = EvalShards(test_folder)
    averaged = Views.of(views, reader.uv)
    landmarks = np.empty((len(test_set), 68, 3), np.float32)
    for rows, batch in test_set.batches(batch_size, ("image",)):
        posmaps = averaged.predict(trained.network, trained.config, batch["image"], device=device,
                                   batch_size=batch_size)
        landmarks[rows] = crop_to_image(reader(posmaps), test_set.tform[rows])
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, name=test_set.name, kpt68=landmarks)


def shards_model_uv(model_dir, folder, fingerprint) -> Path:
    """`folder`, holding the UV assets of the test shards' model (`fingerprint`), computed unless already there."""
    folder = Path(folder)
    if (folder / MODEL_RECORD).is_file():
        try:
            if load_uv_assets(folder, UV_SIZE).model_fingerprint == fingerprint:
                return folder
        except InputError:
            pass
    write_uv_assets(compute_uv_assets(worker_morphable_model(Path(model_dir)), UV_SIZE), folder)
    return folder
