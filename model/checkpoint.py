"""The checkpoint format of `prn-train`: written at epoch ends and within epochs, read to resume a run or to run
the network.

A checkpoint is a dict written with torch.save (atomically) that loads with
`torch.load(weights_only=True)`:

* network: the network's state_dict (the bare PRNet's names, also under DDP);
  "model" in older checkpoints and the shipped one, read the same;
* optimizer, scheduler: their state_dicts; torch_rng: torch's CPU RNG state;
  cuda_rng: the CUDA RNG state of the saving process's GPU (only when it
  trained on one);
* config: the run's settings (TrainConfig's fields) as JSON (sorted keys);
  the network is built from four of them (network_config.py), and a resumed
  run compares RESUME_FIELDS with its own;
* epoch: the last finished epoch (-1: none yet); step: optimizer steps so far;
  best_nme: the best validation NME so far (a fraction);
* batches: the batches of epoch `epoch + 1` already trained by each process
  (0: that epoch has not started), batch_losses: their losses (rank 0's),
  processes: the number of training processes; the three are absent in older
  checkpoints (then 0, [], 1: they resume at the next epoch). The sample order
  and augmentation are functions of (seed, epoch), so with the RNG states this
  is all a run needs to continue an epoch where it stopped;
* model_fingerprint: the face model (3D morphable model) the network's position maps belong
  to (MorphableModel.fingerprint of its UV assets, or of the shards when the
  assets record none); absent in older checkpoints (then None). The UV
  assets' folder is the config's uv_dir.

The shipped network (SHIPPED, in the package) is a checkpoint of its weights, config
and model_fingerprint only, its weights float16 (`write_shipped`); `recipe`
says how it was trained. `resolve_checkpoint` maps None or the word
"shipped" to it.

A run folder holds CHECKPOINT (the run's latest point: an epoch's end, a
stop, or a periodic save within an epoch) and BEST (the best validation
NME). Every problem reading one is an InputError of one line naming the file;
a failed write (a full disk) is an OSError naming it, and the file it was to
replace is kept.
"""

import errno
import json
import math
import os
import warnings
from dataclasses import asdict, fields
from pathlib import Path
from typing import NamedTuple

import torch

from prn.model.network_config import WEIGHT_SHAPING, NetworkConfig, make_network, network_config_of
from prn.pipeline.face_match import FaceModelClaim, resolve
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError, first_line

CHECKPOINT = "last.pt"
BEST = "best.pt"
SHIPPED = Path(__file__).parent / "weights" / "prn-small.pt"
SHIPPED_NAME = "shipped"
WEIGHTS = "network"
OLD_WEIGHTS = "model"          # the weights' key of older checkpoints, earlier shipped networks among them
NETWORK_KEYS = (WEIGHTS, "config")
RESUME_KEYS = (*NETWORK_KEYS, "optimizer", "scheduler", "torch_rng", "epoch", "step", "best_nme")
# What a resumed run must keep: with any of these changed it would go on as another run.
RESUME_FIELDS = ("data", "val", "uv_dir", "weights", "loss", "batch_size", "lr", "lr_halve_every", "lr_halve_steps",
                 "seed", "augment", "detector_framing")
FOLDER_SETTINGS = ("data", "val", "uv_dir")


class Position(NamedTuple):
    """Where a run stands: `epoch` under way (or next to start) with its first `batches` trained per process."""

    epoch: int
    step: int                    # optimizer steps so far
    best_nme: float              # the best validation NME so far (a fraction; inf: none yet)
    batches: int = 0
    losses: tuple = ()           # the losses of those batches, for the epoch's mean


class Trained(NamedTuple):
    """A checkpoint's network, ready to run, with what it was trained with."""

    network: torch.nn.Module
    config: NetworkConfig
    face_model: FaceModelClaim      # the face model of its position maps and the UV assets it trained with
    data: tuple                     # the run's training shard folders (empty for the shipped network)
    val: str | None                 # its validation shards


def save_checkpoint(path, network, optimizer, scheduler, config, position: Position,
                    face_model_fingerprint=None, processes=1):
    """Write everything a run needs to resume from `position` to `path`, atomically.

    config: the run's settings (a TrainConfig). The RNG states are this
    process's now: call it where the run stands at `position`. OSError naming
    `path` when the write fails.
    """
    state = {
        WEIGHTS: network.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "config": json.dumps(asdict(config), sort_keys=True),
        "epoch": position.epoch - 1,
        "batches": position.batches,
        "batch_losses": [float(loss) for loss in position.losses],
        "processes": processes,
        "step": position.step,
        "best_nme": position.best_nme,
        "model_fingerprint": face_model_fingerprint,
    }
    if next(network.parameters()).is_cuda:
        state["cuda_rng"] = torch.cuda.get_rng_state()
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as error:  # torch's writer reports a full disk as "PytorchStreamWriter failed ..."
            raise OSError(errno.EIO, f"cannot write the checkpoint ({first_line(error)}); is the disk full?",
                          str(path)) from None


def load_for_resume(path, config, network, optimizer, scheduler, face_model: FaceModelClaim | None = None,
                    processes=1) -> Position:
    """Restore network, optimizer, scheduler and the RNGs from `path`; the Position to continue from.

    InputError when the checkpoint is unreadable, or its run trained another
    network than `config` describes, or for another face model than this
    run's (`face_model`, when both are known), or it stopped within an epoch
    and `config`'s batch size or the number of `processes` differ (the rest
    of that epoch would not be the same batches).
    """
    state = _read(path, RESUME_KEYS)
    saved, changed = _mismatches(path, state, config)
    if changed:
        changed = [f"{name} {saved[name]}" for name in changed]
        raise InputError(f"{path}: the run was made with another network ({', '.join(changed)}); start a new --out")
    _same_face_model(path, state, face_model, "the run's checkpoint", "start a new --out")
    settings = [f"--{name.replace('_', '-')} {_shown(getattr(config, name))} (the run's: "
                f"{_shown(saved[name])})" for name in RESUME_FIELDS
                if _comparable(name, saved[name]) != _comparable(name, getattr(config, name))]
    if settings:
        raise InputError(f"{path}: --resume with other settings than the run's: {'; '.join(settings)}; resume with "
                         "the run's own, or start a new --out")
    position = _stored_position(path, state)
    made_with = (saved["batch_size"], state.get("processes", 1))
    if position.batches and made_with != (config.batch_size, processes):
        raise InputError(f"{path}: the run stopped within epoch {position.epoch} after {position.batches} batches "
                         f"of {made_with[0]} on {made_with[1]} process(es); resume it with the same --batch-size "
                         "and number of processes")
    _load_weights(path, network, state)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_rng"])
    return position


def load_initial_weights(path, config, network, face_model: FaceModelClaim | None = None):
    """Load the weights (and batch-norm statistics) of the checkpoint at `path` into `network`, to train on.

    InputError, one line, when the checkpoint is unreadable, holds another
    network than `config` describes (backbone, base, kernel; the input size
    may differ: the network is fully convolutional), or was trained for
    another face model than this run's (`face_model`; its UV layout differs).
    """
    path = resolve_checkpoint(path)
    state = _read(path, NETWORK_KEYS)
    saved, changed = _mismatches(path, state, config)
    if changed:
        changed = [f"{name} {saved[name]} (this run: {getattr(config, name)})" for name in changed]
        raise InputError(f"{path}: --init needs the same network, this one differs: {', '.join(changed)}")
    _same_face_model(path, state, face_model, "the --init checkpoint", "its UV layout differs from this run's")
    _load_weights(path, network, state)


def resolve_checkpoint(path) -> Path:
    """The checkpoint file `path` names: None or "shipped" is the shipped network (SHIPPED)."""
    return SHIPPED if path is None or str(path) == SHIPPED_NAME else Path(path)


def write_shipped(source, target, recipe: dict) -> None:
    """Write checkpoint `source`'s network to `target` as a shipped network: float16 weights and batch-norm
    statistics, its config (without the run's folders) and model, and `recipe` (a JSON-able dict)."""
    state = _read(source, NETWORK_KEYS)
    config = {**_stored_settings(source, state), "data": [], "val": "", "out": "", "uv_dir": None, "init": None}
    shipped = {WEIGHTS: {name: tensor.half() if tensor.is_floating_point() else tensor
                         for name, tensor in state[WEIGHTS].items()},
               "config": json.dumps(config, sort_keys=True), "model_fingerprint": _stored_fingerprint(source, state),
               "recipe": json.dumps(recipe, sort_keys=True)}
    with atomic_path(target) as tmp:
        torch.save(shipped, tmp)


def load_trained(path, device="cpu") -> Trained:
    """Trained (the network in eval mode on `device`, its NetworkConfig, what it was trained with) from a
    checkpoint.

    The network is built from the settings stored in the checkpoint, so the
    caller does not need to know the preset. path None or "shipped": the shipped network.
    InputError naming the file when it is unreadable or its weights are not all finite.
    """
    path = resolve_checkpoint(path)
    state = _read(path, NETWORK_KEYS)
    settings = _stored_settings(path, state)
    config = _network_config(path, settings)
    network = make_network(config)
    _load_weights(path, network, state)
    data, val, uv_dir = settings.get("data") or [], settings.get("val") or None, settings.get("uv_dir")
    if not (isinstance(data, list) and all(isinstance(folder, str) for folder in [*data, val or "", uv_dir or ""])):
        raise InputError(f"{path}: not a readable checkpoint (its config: data, val or uv_dir is not a folder)")
    face_model = FaceModelClaim(f"the checkpoint {path}", _stored_fingerprint(path, state),
                                uv_dir=Path(uv_dir) if uv_dir else None)
    return Trained(network.to(device).eval(), config, face_model, tuple(data), val)


def _mismatches(path, state, config):
    """(the checkpoint's settings, with `config`'s defaults where it has none; the WEIGHT_SHAPING settings where
    it differs from `config`)."""
    stored = _stored_settings(path, state)
    _network_config(path, stored)
    saved = {**{field.name: field.default for field in fields(config)}, **stored}
    return saved, [name for name in WEIGHT_SHAPING if saved[name] != getattr(config, name)]


def _same_face_model(path, state, face_model, what, advice):
    """InputError (one line) when the checkpoint was trained for another face model than `face_model`'s."""
    if face_model is not None:
        resolve([FaceModelClaim(f"{what} {path}", _stored_fingerprint(path, state)), face_model], advice=advice)


def _comparable(name, value):
    """A setting as a resumed run compares it: folders by their absolute, normalised path (one a run recorded
    relative is taken from the working folder, as it was)."""
    if name in FOLDER_SETTINGS and value is not None:
        return tuple(map(os.path.abspath, value)) if isinstance(value, (tuple, list)) else os.path.abspath(value)
    return value


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _read(path, keys) -> dict:
    """The checkpoint's dict, on the CPU, holding at least `keys`."""
    try:
        with warnings.catch_warnings():   # torch's note on a file of another pickle protocol, refused anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such checkpoint") from None
    except Exception as error:  # torch raises many types for bad files
        empty = Path(path).is_file() and Path(path).stat().st_size == 0
        reason = first_line(error).split(". ")[0]  # torch's advice follows
        if empty or isinstance(error, (KeyError, EOFError)) or not reason:   # a bare byte value or nothing
            reason = "an empty file" if empty else "not a file torch.save wrote, or cut short"
        raise InputError(f"{path}: not a readable checkpoint ({reason})") from None
    if isinstance(state, dict) and WEIGHTS not in state and OLD_WEIGHTS in state:
        state[WEIGHTS] = state.pop(OLD_WEIGHTS)
    missing = [key for key in keys if key not in state] if isinstance(state, dict) else list(keys)
    if missing:
        raise InputError(f"{path}: not a readable checkpoint (it lacks {', '.join(missing)})")
    return state


def _stored_settings(path, state) -> dict:
    """The run's settings the checkpoint stores, as a dict."""
    try:
        settings = json.loads(state["config"])
    except (TypeError, ValueError, RecursionError) as error:
        raise InputError(f"{path}: not a readable checkpoint (its config: {first_line(error)})") from None
    if not isinstance(settings, dict):
        raise InputError(f"{path}: not a readable checkpoint (its config is not a JSON object of settings)")
    return settings


def _network_config(path, settings) -> NetworkConfig:
    try:
        return network_config_of(settings)
    except InputError as error:
        raise InputError(f"{path}: not a readable checkpoint (its config: {error})") from None


def _stored_position(path, state) -> Position:
    batches, losses = state.get("batches", 0), state.get("batch_losses", [])
    if not (isinstance(batches, int) and batches >= 0 and isinstance(losses, list) and len(losses) == batches
            and all(isinstance(loss, float) for loss in losses)):
        raise InputError(f"{path}: not a readable checkpoint (its batches and batch_losses do not agree)")
    epoch, step, best = state["epoch"], state["step"], state["best_nme"]
    for name, value in (("epoch", epoch), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (-1 if name == "epoch" else 0):
            raise InputError(f"{path}: not a readable checkpoint (its {name} is {value!r}, not a count)")
    if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best) or best < 0:
        raise InputError(f"{path}: not a readable checkpoint (its best_nme is {best!r}, not a number >= 0)")
    return Position(epoch + 1, step, float(best), batches, tuple(losses))


def _stored_fingerprint(path, state) -> str | None:
    fingerprint = state.get("model_fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise InputError(f"{path}: not a readable checkpoint (its model_fingerprint is not a string)")
    return fingerprint


def _load_weights(path, network, state):
    """Load the checkpoint's weights into `network`; InputError when they do not fit it or are not all finite."""
    try:
        network.load_state_dict(state[WEIGHTS])
    except (RuntimeError, TypeError) as error:
        raise InputError(f"{path}: the weights do not fit the network ({first_line(error)})") from None
    broken = [name for name, tensor in network.state_dict().items()
              if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if broken:
        more = f" and {len(broken) - 1} more" if len(broken) > 1 else ""
        raise InputError(f"{path}: the network's weights hold NaN or inf ({broken[0]}{more}): a diverged run?")
