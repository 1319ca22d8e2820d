"""`prn-eval real`: a checkpoint scored on real AFLW2000-3D photos, the mean-face baseline beside it.

In the output folder OUT:
* shards/: the photos (AFLW2000/imageNNNNN.jpg + .mat, docs/formats.md
  section 4) built by `prn-prep build`'s API, layout aflw2000, no jitter,
  with the morphable model their parameters were fitted with; a rerun keeps
  the finished shards (build's resume);
* network/: `prn-eval`'s files for the checkpoint as a user runs it, ground
  truth `pt3d_68`: each photo cropped by `prn-predict`'s rule for a given
  box (docs/formats.md section 6, "Inference crops") from the box of its true
  68 landmarks, and predicted by `Predictor` (its predictions.npz);
* network-framed/: the same for the shard's own crop (1.5 times the box of
  the model's landmarks, centred: the training framing);
* mean-face/: the same for the mean-face baseline (predictions.npz: the
  mean position map of the network's training shards, read at the network's
  uv_kpt_ind and placed by each test crop);
* uv/: only for a checkpoint of another model than the photos' (below);
* summary.json, written last (removed when a run starts): the NMEs of the
  network (as a user crops), of the network on the framed crops and of the
  mean face, the counts and the inputs.

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
from prn.model.prediction.predictor import DEFAULT_REFRAMES, Predictor
from prn.model.views import Views
from prn.pipeline.build import BuildSettings, build, dataset_root
from prn.pipeline.datasets import read_image
from prn.pipeline.face_match import FaceModelClaim, absolute, manifest_claim, resolve, short
from prn.pipeline.shards import MANIFEST, UV_SIZE, load_manifest
from prn.pipeline.stage import worker_morphable_model
from prn.rendering.geometry.crop import crop_to_image
from prn.rendering.morphable.uv_assets import MODEL_RECORD, compute_uv_assets, load_uv_assets, write_uv_assets
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError

SHARDS, NETWORK, FRAMED, MEAN_FACE, UV = "shards", "network", "network-framed", "mean-face", "uv"
SUMMARY = "summary.json"
CROPS = {"network": "prn-predict's crop of the box of the true 68 landmarks (centre 0.14 old down, side 1.58 old)",
         "network_framed": "the shard's crop: 1.5 old about the centre of the model's 68 landmarks",
         "mean_face": "the shard's crop"}
PREDICTIONS = "predictions.npz"
LAYOUT = "AFLW2000/imageNNNNN.jpg + .mat with pt3d_68"


@dataclass(frozen=True)
class RealPhotoRun:
    """What `prn-eval real` scores, and where."""

    photos: Path                 # an AFLW2000 folder (or one holding it)
    face_model_dir: Path              # the morphable model the photos' parameters were fitted with
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
    reframes: int = DEFAULT_REFRAMES     # the users' crops reframed by landmarks first, as prn-predict does


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
    network_uv = resolve([trained.face_model], uv=True, given_uv=run.uv_dir, uv_size=UV_SIZE)
    if network_uv.note:
        note(network_uv.note)
    # the checkpoint's face model, else that of the UV assets it was trained with
    network_model = FaceModelClaim(trained.face_model.owner, network_uv.fingerprint)
    baseline = baseline_folders(run, trained.data, network_model)
    check_unseen(root, out / SHARDS, trained, baseline, run.checkpoint, note)
    (out / SUMMARY).unlink(missing_ok=True)   # present only when the last run finished

    built = build(BuildSettings(face_model_dir=Path(run.face_model_dir), out_dir=out / SHARDS, layout="aflw2000",
                                jitter=False), root, workers=run.workers)
    shards = manifest_claim(load_manifest(out / SHARDS), f"the photos' shards {out / SHARDS}")
    same_model = None in (network_model.fingerprint, shards.fingerprint) or network_model.fingerprint == \
        shards.fingerprint
    predictor = Predictor.from_checkpoint(run.checkpoint, uv_dir=network_uv.uv.folder, device=run.device,
                                          batch_size=run.batch_size, views=run.views, landmarks=run.landmarks,
                                          fit_model=run.fit_model, reframes=run.reframes)
    if same_model:
        scoring_uv = network_uv.uv.folder
        (out / FRAMED / PREDICTIONS).unlink(missing_ok=True)   # of an earlier checkpoint of another model
        framed = run_evaluation(out / SHARDS, out / FRAMED, checkpoint=run.checkpoint,
                                batch_size=run.batch_size, device=run.device, uv_dir=scoring_uv, views=run.views,
                                landmarks=run.landmarks, fit_model=run.fit_model, progress=note)
    else:
        note(f"{run.checkpoint} is of face model {short(network_model.fingerprint)}, the photos' shards of face "
             f"model {short(shards.fingerprint)}: "
             "scoring its 68 landmarks only (no head pose, no dense NME)")
        scoring_uv = photos_uv(run.face_model_dir, out / UV, shards)
        write_network_landmarks(trained, predictor.landmark_reader, out / SHARDS, out / FRAMED / PREDICTIONS,
                                run.batch_size, run.device, run.views)
        framed = run_evaluation(out / SHARDS, out / FRAMED, predictions=out / FRAMED / PREDICTIONS,
                                uv_dir=scoring_uv)
    write_box_crop_predictions(predictor, root, out / SHARDS, out / NETWORK / PREDICTIONS, dense=same_model)
    network = run_evaluation(out / SHARDS, out / NETWORK, predictions=out / NETWORK / PREDICTIONS, uv_dir=scoring_uv)
    write_mean_face_predictions(baseline, out / SHARDS, network_uv.uv.folder, out / MEAN_FACE / PREDICTIONS)
    mean_face = run_evaluation(out / SHARDS, out / MEAN_FACE, predictions=out / MEAN_FACE / PREDICTIONS,
                               uv_dir=scoring_uv)
    summary = {
        "photos": str(absolute(root)),
        "model": str(absolute(run.face_model_dir)),
        "checkpoint": str(absolute(run.checkpoint)),
        "baseline_shards": [str(absolute(folder)) for folder in baseline],
        "views": run.views,
        "reframes": run.reframes,
        "landmarks": predictor.landmark_reader.reading,
        "fit_model": predictor.landmark_reader.fitted_folder,
        "count": network["count"],
        "rejected": len(built.rejects),
        "bins": network["bins"],
        "scored": "full" if same_model else "landmarks",
        "crops": CROPS,
        "network": _headline(network, out / NETWORK),
        "network_framed": _headline(framed, out / FRAMED),
        "mean_face": _headline(mean_face, out / MEAN_FACE),
    }
    with atomic_path(out / SUMMARY) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def summary_line(summary, out) -> str:
    """The one line `prn-eval real` prints: 2D bbox NME, all and balanced, of the network as a user crops, on the
    framed crops, and of the mean face."""
    network, framed, mean_face = (summary[key]["nme2d_bbox"] for key in ("network", "network_framed", "mean_face"))
    rejected = f", {summary['rejected']} rejected" if summary["rejected"] else ""
    views = f" ({summary['views']} views)" if summary.get("views", 1) != 1 else ""
    return (f"{summary['count']} real photos{rejected}: 2D bbox NME of the network{views} all {network['all']:.2f} %, "
            f"balanced {network['balanced']:.2f} % (prn-predict's crop of the landmarks' box; framed crops: all "
            f"{framed['all']:.2f} %, balanced {framed['balanced']:.2f} %); mean face all {mean_face['all']:.2f} %, "
            f"balanced {mean_face['balanced']:.2f} %; summary: {Path(out) / SUMMARY}")


def _headline(report, folder):
    return {"nme2d_bbox": _all_balanced(report["nme2d_bbox"]), "nme3d_bbox": _all_balanced(report["nme3d_bbox"]),
            "report": str(Path(folder) / "report.md")}


def _all_balanced(by_yaw):
    return {"all": float(by_yaw["all"]), "balanced": float(by_yaw["balanced"])}


# ---------------------------------------------------------------------------
# Checks of the inputs


def baseline_folders(run: RealPhotoRun, trained_on, network_model: FaceModelClaim) -> tuple:
    """The mean face's shard folders: --baseline-shards, else the checkpoint's training data (`trained_on`).

    InputError (one line) when there are none, one is missing, or one is of
    another face model than the checkpoint (`network_model`).
    """
    folders = tuple(Path(folder) for folder in (run.baseline or trained_on))
    if not folders:
        raise InputError(f"{run.checkpoint}: records no training data; give --baseline-shards")
    for folder in folders:
        if not run.baseline and not (folder / MANIFEST).is_file():
            raise InputError(f"{folder}: no shard folder there (the training data {run.checkpoint} records); "
                             "give --baseline-shards")
        resolve([manifest_claim(load_manifest(folder), f"the shards {folder}"), network_model],
                advice="the mean face comes from the network's training shards")
    return folders


def check_unseen(root, test_shards, trained, baseline, checkpoint, note):
    """Refuse training or baseline shards built from the test photos; a note for validation shards built from them.

    A shard folder counts as built from them when it is the test shard folder
    or its manifest records the photos' folder as its source.
    """
    for role, folders in (("training", trained.data), ("baseline", baseline)):
        for folder in folders:
            if _built_from(folder, root, test_shards):
                raise InputError(f"{folder}: built from the test photos {root}; a real-photo score needs {role} "
                                 "data without them")
    if trained.val and _built_from(trained.val, root, test_shards):
        note(f"{checkpoint} was validated on {trained.val}, built from these photos: choosing best.pt on "
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


def write_box_crop_predictions(predictor: Predictor, root, test_folder, path, dense):
    """Write a `prn-eval --predictions` npz of what `predictor` gives for each test photo with the box of its true
    68 landmarks, as `prn-predict --boxes` does.

    name (N,), kpt68 (N, 68, 3) float32 original image coordinates, and with
    `dense` the dense faces as position maps in those coordinates (posmap
    (N, 256, 256, 3) float32, face_ind filled, tform the identity).
    """
    test_set = EvalShards(test_folder)
    uv = predictor.uv
    boxes = np.concatenate([test_set.truth[:, :, :2].min(axis=1), test_set.truth[:, :, :2].max(axis=1)], axis=1)
    faces = []
    for start in range(0, len(test_set), predictor.batch_size):
        names = test_set.name[start:start + predictor.batch_size]
        images = [read_image(Path(root) / f"{name}.jpg") for name in names]
        faces += [found[0] for found in predictor.predict_many(images, boxes[start:start + len(names), None])]
    arrays = {"name": test_set.name, "kpt68": np.stack([face.landmarks for face in faces])}
    if dense:
        posmap = np.zeros((len(faces), uv.size * uv.size, 3), np.float32)
        posmap[:, uv.face_ind] = np.stack([face.vertices for face in faces])
        arrays.update(posmap=posmap.reshape(-1, uv.size, uv.size, 3), tform=np.tile(np.eye(3), (len(faces), 1, 1)))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def photos_uv(face_model_dir, folder, shards: FaceModelClaim) -> Path:
    """The UV assets of the photos' shards' face model: found by the resolver (the built-in ones,
    FACE_MODEL/uv256), else computed into `folder` unless already there."""
    try:
        return resolve([shards], uv=True, uv_size=UV_SIZE).uv.folder
    except InputError:
        pass
    folder = Path(folder)
    if (folder / MODEL_RECORD).is_file():
        try:
            if load_uv_assets(folder, UV_SIZE).face_model_fingerprint == shards.fingerprint:
                return folder
        except InputError:
            pass
    write_uv_assets(compute_uv_assets(worker_morphable_model(Path(face_model_dir)), UV_SIZE), folder)
    return folder
