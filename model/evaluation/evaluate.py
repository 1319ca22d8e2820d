"""`prn-eval`: a checkpoint, or a file of predictions, scored on test shards by the AFLW2000-3D protocol.

Ground truth, per sample: `pt3d_68` (original image coordinates) when the
shards have it (AFLW2000-3D), else `kpt68` mapped back from the crop.
Predictions, in original image coordinates:
* from a checkpoint: position maps predicted from the shard crops, the 68
  landmarks read at uv_kpt_ind and mapped back through the inverse of the
  sample's `tform` ((x, y) by the inverse similarity, z divided by its scale);
* from `--predictions FILE.npz`: `name` (N,) and `kpt68` (N, 68, 3) in
  original image coordinates, matched to the shards by name; optionally
  `posmap` (N, S, S, 3), position maps in crop pixels of the shard crops, or
  of the crops given by an optional `tform` (N, 3, 3) (image -> crop).
With position maps (always from a checkpoint) there is also the dense face:
a checkpoint's read as `prn-predict` reads it (the fitted model's surface, or
the map smoothed within the face; model/landmarks.py), a file's map as given,
at face_ind. Against the shard's position map, in the shard crop: the head
pose (`estimate_pose` of the dense face against the shard's Pose_Para), the
dense NME (normalised by the bbox of the shard's `kpt68`), the normal angle
and the nose depth ratio (model/evaluation/surface.py), the last two also of
the mean face placed on each true face by a 3D similarity.
Metric definitions: model/evaluation/metrics.py and surface.py.

Outputs in OUT: report.json (the numbers), per_sample.csv, ced.png (the CED
of the 2D bbox NME, drawn with cv2), report.md (tables, the CED, the 20 worst
samples) and gallery/ (those samples' crops, ground truth in green, prediction
in red). Each file is written under a temporary name and renamed;
report.json is written last.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prn.model.evaluation import metrics as benchmark
from prn.model.evaluation.metrics import AUC_THRESHOLDS, FAILURE_THRESHOLD, NME_KEYS
from prn.model.evaluation.report import write_outputs
from prn.model.evaluation.surface import SurfaceMeasure, placed_mean_faces
from prn.model.inference import FACE_SMOOTHING, FaceSmoother
from prn.model.landmarks import DEFAULT_LANDMARKS, LandmarkReader, check_reading
from prn.model.views import VIEW_SETS, Views
from prn.pipeline.face_match import Resolved, manifest_claim, resolve, shard_folder_claims
from prn.pipeline.shards import MANIFEST, ShardFolder
from prn.rendering.geometry.crop import crop_to_image, image_to_crop, similarity_scale
from prn.rendering.geometry.head_pose import estimate_pose
from prn.rendering.morphable.uv_assets import UVAssetFolder
from prn.rendering.util.errors import InputError

_SHARD_FIELDS = ("image", "posmap", "kpt68", "tform", "pose", "name")


# ---------------------------------------------------------------------------
# Inputs: UV assets, test shards, predictions files


class EvalShards:
    """The samples of a shard folder, in manifest order: metadata in memory, crops and maps read per batch."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.shards = ShardFolder(self.folder)
        self.uv_size = self.shards.uv_size
        self.face_model = manifest_claim(self.shards.manifest, f"the test shards {self.folder}")
        if len(self.shards) == 0:
            raise InputError(f"{self.folder / MANIFEST}: no samples to evaluate")
        self.shards.require(_SHARD_FIELDS)
        self.name = self.shards.names
        if len(set(self.name)) != len(self.name):
            raise InputError(f"{self.folder}: sample names repeat")
        columns = {field: [] for field in ("tform", "pose", "kpt68")}
        pt3d = []
        for shard in self.shards.nonempty():
            for field, values in self.shards.read(shard, tuple(columns)).items():
                columns[field].append(values.astype(np.float64))
            truth = "pt3d_68" in self.shards.fields(shard)
            pt3d.append(self.shards.read(shard, ("pt3d_68",))["pt3d_68"].astype(np.float64) if truth else None)
        self.tform = np.concatenate(columns["tform"])
        self.pose = np.concatenate(columns["pose"])
        self.kpt68 = np.concatenate(columns["kpt68"])          # crop coordinates
        if all(part is not None for part in pt3d):
            self.truth, self.truth_source = np.concatenate(pt3d), "pt3d_68"
        else:
            self.truth, self.truth_source = crop_to_image(self.kpt68, self.tform), "kpt68"
        if not (np.isfinite(self.truth).all() and np.isfinite(self.pose).all()):
            raise InputError(f"{self.folder}: NaN or inf in the ground truth landmarks or poses")

    def __len__(self):
        return len(self.name)

    def batches(self, size, fields):
        """Yield (rows (B,) int, {field: (B, ...) array}) over all samples; a batch stays within a shard."""
        return self.shards.blocks(fields, size)

    def images(self, rows):
        """(len(rows), C, C, 3) uint8 crops of the given sample indices."""
        out = []
        for index in rows:
            shard, row = self.shards.locate(int(index))
            out.append(self.shards.read(shard, ("image",), row)["image"])
        return np.stack(out)


@dataclass
class PredictionFile:
    """A predictions npz reordered to the test shards' order."""

    kpt68: np.ndarray             # (N, 68, 3) original image coordinates
    posmap: np.ndarray = None     # (N, S, S, 3) crop pixels, or None
    tform: np.ndarray = None      # (N, 3, 3) image -> the posmaps' crops, or None: the shard crops


def _first(items, count=3):
    shown = ", ".join(str(item) for item in list(items)[:count])
    return shown + (", ..." if len(items) > count else "")


def load_predictions(path, names, uv: UVAssetFolder) -> PredictionFile:
    """Read a predictions npz and order it like `names` (N,); InputError (one line) for any mismatch."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise InputError(f"{path}: no such predictions file") from None
    except Exception as error:  # numpy raises many types for bad archives
        if "allow_pickle" in str(error):
            raise InputError(f"{path}: holds Python objects; save names as a string array "
                             "(np.asarray(names, dtype=str))") from None
        raise InputError(f"{path}: not a readable .npz ({str(error).splitlines()[0][:200]})") from None
    for key in ("name", "kpt68"):
        if key not in arrays:
            raise InputError(f"{path}: no '{key}' array (expected name (N,) and kpt68 (N, 68, 3))")
    given = arrays["name"]
    if given.ndim != 1 or given.dtype.kind not in "US":
        raise InputError(f"{path}: 'name' must be a 1-D string array, got {given.dtype} {given.shape}")
    given = given.astype(str)
    count = len(given)
    expected = {"kpt68": (count, 68, 3), "posmap": (count, uv.size, uv.size, 3), "tform": (count, 3, 3)}
    for key, shape in expected.items():
        if key in arrays and arrays[key].shape != shape:
            raise InputError(f"{path}: '{key}' has shape {arrays[key].shape}, expected {shape} "
                             f"({count} names)")
        if key in arrays and arrays[key].dtype.kind not in "fiu":
            raise InputError(f"{path}: '{key}' is not numeric ({arrays[key].dtype})")
    unique, counts = np.unique(given, return_counts=True)
    if (counts > 1).any():
        raise InputError(f"{path}: names appear more than once: {_first(unique[counts > 1])}")
    position = {name: index for index, name in enumerate(given)}
    wanted = set(names)
    extra = [name for name in given if name not in wanted]
    if extra:
        raise InputError(f"{path}: {len(extra)} predictions name no test sample: {_first(extra)}")
    missing = [name for name in names if name not in position]
    if missing:
        raise InputError(f"{path}: no prediction for {len(missing)} of the {len(names)} test samples: "
                         f"{_first(missing)}")
    order = np.array([position[name] for name in names])
    kpt68 = arrays["kpt68"][order].astype(np.float64)
    _require_finite(path, "kpt68", kpt68.reshape(len(names), -1), names)
    posmap = tform = None
    if "posmap" in arrays:
        posmap = arrays["posmap"][order].astype(np.float32)
        _require_finite(path, "posmap", posmap.reshape(len(names), -1, 3)[:, uv.face_ind], names)
    if "tform" in arrays:
        if posmap is None:
            raise InputError(f"{path}: 'tform' without 'posmap' (it places the position maps)")
        tform = arrays["tform"][order].astype(np.float64)
        _require_finite(path, "tform", tform, names)
        if not (similarity_scale(tform) > 0).all():
            raise InputError(f"{path}: 'tform' holds a similarity of scale 0")
    return PredictionFile(kpt68=kpt68, posmap=posmap, tform=tform)


def _require_finite(path, key, values, names):
    bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
    if bad.any():
        raise InputError(f"{path}: NaN or inf in '{key}' of {int(bad.sum())} samples: {_first(names[bad])}")


# ---------------------------------------------------------------------------
# Running


def _checkpoint_batches(test_set, uv, network, config, batch_size, device, views, reader: LandmarkReader):
    """Yield (rows, landmarks (B, 68, 3) image coordinates, dense faces (B, f, 3) shard-crop pixels, shard maps)
    from a network.

    views: the network's maps averaged over that many views of each crop
    (model/views.py); reader: how the landmarks and the dense face are read from the maps, the map's dense face
    smoothed as prn-predict smooths it (model/landmarks.py).
    """
    averaged = Views.of(views, uv)
    smoother = FaceSmoother(uv.face_ind, FACE_SMOOTHING)
    for rows, batch in test_set.batches(batch_size, ("image", "posmap")):
        posmaps = averaged.predict(network, config, batch["image"], device=device, batch_size=batch_size)
        landmarks, dense = reader.read(posmaps, smoother)
        yield rows, crop_to_image(landmarks, test_set.tform[rows]), dense, batch["posmap"]


def _file_batches(test_set, predictions: PredictionFile, batch_size, uv):
    """The same as _checkpoint_batches from a predictions file: the dense faces are its maps at face_ind, None
    without its `posmap`.

    Maps made in crops of their own (`tform`) are moved into the shard crops.
    """
    with_maps = predictions.posmap is not None
    for rows, batch in test_set.batches(batch_size, ("posmap",) if with_maps else ()):
        posmaps = None
        if with_maps:
            posmaps = predictions.posmap[rows]
            if predictions.tform is not None:
                flat = posmaps.reshape(len(rows), -1, 3)
                moved = image_to_crop(crop_to_image(flat, predictions.tform[rows]), test_set.tform[rows])
                posmaps = moved.reshape(posmaps.shape)
            posmaps = posmaps.reshape(len(rows), -1, 3)[:, uv.face_ind]
        yield rows, predictions.kpt68[rows], posmaps, batch.get("posmap")


def evaluation_assets(test_set: EvalShards, uv_dir=None, trained=None, landmarks=DEFAULT_LANDMARKS,
                      fit_model=None) -> Resolved:
    """The UV assets to read the predictions with and the face model folder to fit landmarks with (None: read
    from the map), of the test shards' and the checkpoint's face model (pipeline/face_match.py).

    uv_dir: --uv-dir or None to pick; trained: the checkpoint's Trained, or
    None for a predictions file; landmarks, fit_model: as run_evaluation.
    InputError (one line) for a checkpoint of another face model than the
    shards', or folders given of another face model than theirs.
    """
    claims = [trained.face_model, test_set.face_model] if trained is not None else [test_set.face_model]
    fit = trained is not None and landmarks == "fit"
    hints = shard_folder_claims(trained.data) if trained is not None else ()
    return resolve(claims, face_model="optional" if fit else "no", given_face_model=fit_model if fit else None,
                   face_model_option="--fit-model", uv=True, given_uv=uv_dir, uv_size=test_set.uv_size,
                   hints=hints)


def check_views(views, checkpoint):
    """InputError (one line) unless views is a view count (model/views.py), and 1 when there is no checkpoint."""
    if views not in VIEW_SETS:
        raise InputError(f"views must be one of {', '.join(map(str, VIEW_SETS))}, got {views!r}")
    if views != 1 and checkpoint is None:
        raise InputError("views average a network's maps: give --checkpoint, not --predictions")


DENSE_KEYS = ("dense2d", "dense3d", "normal_angle", "nose_depth_ratio",
              "mean_face_normal_angle", "mean_face_nose_depth_ratio")


def dense_scores(uv, measure: SurfaceMeasure, dense, truth_maps, truth_kpt68):
    """(pose (B, 3) radians, {DENSE_KEYS: (B,)}) of predicted dense faces (B, f, 3) at face_ind against the shard
    maps (B, S, S, 3), both in the shard crop's pixels.

    The dense NMEs (percent) are normalised by the bbox of truth_kpt68 (B, 68, 3), same pixels; the normal angle
    (degrees) and nose depth ratio are also given for the mean face placed on each true face (surface.py).
    """
    count = len(dense)
    points = np.asarray(dense, np.float64)
    truth = np.asarray(truth_maps).reshape(count, -1, 3)[:, uv.face_ind].astype(np.float64)
    pose = np.array([estimate_pose(face, uv.canonical) for face in points])
    scale = benchmark.bbox_size(truth_kpt68)
    mean_face = measure.scores(placed_mean_faces(uv.canonical, truth), truth)
    scores = {"dense2d": benchmark.nme(points, truth, 2, scale=scale),
              "dense3d": benchmark.nme(points, truth, 3, scale=scale),
              **measure.scores(points, truth),
              **{f"mean_face_{key}": value for key, value in mean_face.items()}}
    return pose, scores


def run_evaluation(data, out, checkpoint=None, predictions=None, batch_size=16, device="cpu", uv_dir=None,
                   progress=None, views=1, landmarks=DEFAULT_LANDMARKS, fit_model=None) -> dict:
    """Score a checkpoint or a predictions npz on the shards in `data`; write OUT's files; return the report.

    uv_dir: UV assets of the shards' face model; None: picked by evaluation_assets.
    views: a checkpoint's maps are the mean of that many views of each crop
    (1, 2, 4 or 8; model/views.py; 1: the network's own map).
    landmarks, fit_model: how a checkpoint's landmarks are read from its maps
    ("fit" or "map") and the face model folder fitted (model/landmarks.py;
    None: one the test or training shards record, else the built-in model).
    progress: called with the one-line note when the UV assets record no model.
    """
    if (checkpoint is None) == (predictions is None):
        raise InputError("give exactly one of --checkpoint and --predictions")
    check_views(views, checkpoint)
    started = time.perf_counter()
    test_set = EvalShards(data)
    network = config = trained = None
    if checkpoint is not None:
        from prn.model.checkpoint import load_trained  # torch loads only when a network runs
        trained = load_trained(checkpoint, device)
        network, config = trained.network, trained.config
    check_reading(landmarks)
    chosen = evaluation_assets(test_set, uv_dir, trained, landmarks, fit_model)
    if chosen.note and progress is not None:
        progress(chosen.note)
    uv = chosen.uv
    if network is not None:
        reader = LandmarkReader.of(landmarks, uv, chosen.face_model_dir)
        batches = _checkpoint_batches(test_set, uv, network, config, batch_size, device, views, reader)
    else:
        batches = _file_batches(test_set, load_predictions(predictions, test_set.name, uv), batch_size, uv)
    count = len(test_set)
    predicted = np.empty((count, 68, 3))
    pose = np.full((count, 3), np.nan)
    dense = {key: np.full(count, np.nan) for key in DENSE_KEYS}
    measure = SurfaceMeasure(uv.face_ind, uv.triangles, uv.kpt, uv.size)
    for rows, landmarks, faces, truth_maps in batches:
        predicted[rows] = landmarks
        if faces is not None:
            pose[rows], scores = dense_scores(uv, measure, faces, truth_maps, test_set.kpt68[rows])
            for key, values in scores.items():
                dense[key][rows] = values
    report, per_sample = score(test_set, predicted, pose, dense)
    report["source"] = {"data": str(data), "truth": test_set.truth_source,
                        "checkpoint" if checkpoint is not None else "predictions": str(checkpoint or predictions)}
    if checkpoint is not None:
        report["source"]["views"] = views
        report["source"]["landmarks"] = reader.reading
        report["source"]["fit_model"] = reader.fitted_folder
    report["ms_per_sample"] = round(1000 * (time.perf_counter() - started) / count, 2)
    write_outputs(Path(out), report, per_sample, test_set, predicted)
    return report


# ---------------------------------------------------------------------------
# Scoring


def score(test_set, predicted, pose, dense):
    """(report dict, per-sample columns dict) of one run.

    predicted (N, 68, 3) image coordinates; pose (N, 3) estimated [pitch, yaw,
    roll] radians, all NaN without position maps; dense {DENSE_KEYS: (N,)}
    (dense_scores; NaN without position maps).
    """
    truth = test_set.truth
    yaw = np.degrees(test_set.pose[:, 1])
    errors = {f"nme{dims}d_{kind}": benchmark.nme(predicted, truth, dims, kind)
              for kind in ("bbox", "iod") for dims in (2, 3)}
    headline = errors["nme2d_bbox"]
    report = {"count": len(truth), "bins": benchmark.bin_counts(yaw)}
    report.update({key: benchmark.by_yaw(errors[key], yaw) for key in NME_KEYS})
    report["table2"] = benchmark.table2(headline)
    for threshold in AUC_THRESHOLDS:
        report[f"auc{threshold:g}"] = benchmark.auc(headline, threshold)
    report[f"failure{FAILURE_THRESHOLD:g}"] = benchmark.failure_rate(headline, FAILURE_THRESHOLD)
    bins = np.array(benchmark.YAW_BINS)[benchmark.yaw_bin(yaw)]
    per_sample = {"name": test_set.name, "yaw_deg": yaw, "yaw_bin": bins, **errors}
    if np.isfinite(pose).all():
        angle_errors = benchmark.angle_errors_deg(pose, test_set.pose[:, :3])
        rotation_errors = benchmark.rotation_errors_deg(pose, test_set.pose[:, :3])
        pitch, yaw_mae, roll = angle_errors.mean(axis=0).tolist()
        report["pose_mae"] = {"yaw": yaw_mae, "pitch": pitch, "roll": roll, "mean": (pitch + yaw_mae + roll) / 3,
                              "geodesic": float(rotation_errors.mean())}
        per_sample.update({f"{angle}_error_deg": angle_errors[:, axis]
                           for axis, angle in enumerate(("pitch", "yaw", "roll"))})
        per_sample["rotation_error_deg"] = rotation_errors
        report["dense"] = {f"nme{dims}d": benchmark.by_yaw(dense[f"dense{dims}d"], yaw) for dims in (2, 3)}
        report["dense"].update({key: benchmark.by_yaw(dense[key], yaw) for key in DENSE_KEYS[2:]})
        per_sample.update(dense)
    else:
        report["pose_mae"] = None
        report["dense"] = None
    return report, per_sample
