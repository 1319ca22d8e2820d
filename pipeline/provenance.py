"""prn-dataset.json: the 3D morphable model and the settings a dataset folder was made with.

`prn-prep synth` and `prn-prep fit` write it at the root of their output (the
--out folder) before the first sample. A rerun with other settings stops
instead of mixing samples of two kinds; `build` reads the record to use the
model the samples' coefficients belong to. One JSON object:

    {"format": "prn-dataset", "version": 1, "stage": "synth" | "fit",
     "model": {"fingerprint": sha256 hex (MorphableModel.fingerprint),
               "path": the absolute model folder, "builtin": true for the built-in model},
     "settings": {the stage's settings that change the samples' bytes},
     "folders": [the top-level folders under the root that hold the samples]}

Real 300W-LP and AFLW2000-3D carry no record: their model has to be named.
"""

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from prn.pipeline.stage import worker_morphable_model
from prn.pipeline.synthetic.builtin import builtin_model_dir
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError, first_line

RECORD = "prn-dataset.json"
FORMAT = "prn-dataset"
VERSION = 1
SEARCH_LEVELS = 2    # a record may sit this many folders above the dataset folder (DATA/300W_LP)
SHORT = 12           # hex digits of a fingerprint in messages


def absolute(path) -> Path:
    """An absolute, normalised path (symbolic links kept)."""
    return Path(os.path.abspath(path))


@lru_cache(maxsize=1)
def builtin_fingerprint() -> str:
    """The built-in synthetic model's fingerprint, from the UV assets shipped with it."""
    from prn.uv_data import builtin_uv_dir
    return load_uv_assets(builtin_uv_dir()).model_fingerprint


@dataclass(frozen=True)
class ModelRecord:
    """A model some data was made with: its fingerprint and the folder it was read from."""

    fingerprint: str
    path: Path
    builtin: bool = False

    def describe(self) -> str:
        """'9f8e7d6c5b4a (at /data/bfm)', or '(built-in, at ...)'."""
        where = f"built-in, at {self.path}" if self.builtin else f"at {self.path}"
        return f"{self.fingerprint[:SHORT]} ({where})"

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "path": str(self.path), "builtin": self.builtin}


def model_record(model_dir) -> ModelRecord:
    """The ModelRecord of a model folder (loaded once per process); InputError when it is unusable."""
    fingerprint = worker_morphable_model(model_dir).fingerprint
    return ModelRecord(fingerprint, absolute(model_dir), fingerprint == builtin_fingerprint())


def manifest_model(manifest) -> ModelRecord | None:
    """The model a shard folder was built with, from its manifest.json (None when it names none)."""
    fingerprint = manifest.get("model_fingerprint")
    path = (manifest.get("settings") or {}).get("model_dir")
    if not isinstance(fingerprint, str) or not isinstance(path, str):
        return None
    return ModelRecord(fingerprint, Path(path), fingerprint == builtin_fingerprint())


@dataclass(frozen=True)
class DatasetRecord:
    """The parsed prn-dataset.json of a dataset folder."""

    path: Path              # the record file
    stage: str
    model: ModelRecord
    settings: dict
    folders: tuple

    def covers(self, folder) -> bool:
        """Whether `folder` (the record's folder or one below it) holds data the record describes."""
        inside = absolute(folder).relative_to(absolute(self.path.parent)).parts
        return not inside or inside[0] in self.folders

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "stage": self.stage, "model": self.model.to_json(),
                "settings": self.settings, "folders": list(self.folders)}


def read_dataset_record(path) -> DatasetRecord:
    """Parse a prn-dataset.json; InputError (one line) when it is unreadable or malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not readable JSON ({first_line(error)})") from None
    model = data.get("model") if isinstance(data, dict) else None
    if not (isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("stage"), str)
            and isinstance(model, dict) and isinstance(model.get("fingerprint"), str)
            and isinstance(model.get("path"), str) and isinstance(data.get("settings"), dict)
            and isinstance(data.get("folders"), list)):
        raise InputError(f"{path}: malformed (expected a {FORMAT} record: stage, model {{fingerprint, path}}, "
                         "settings, folders)")
    if data.get("version") != VERSION:
        raise InputError(f"{path}: record version {data.get('version')!r}, this prn-prep reads {VERSION}")
    return DatasetRecord(path=path, stage=data["stage"],
                         model=ModelRecord(model["fingerprint"], Path(model["path"]), bool(model.get("builtin"))),
                         settings=data["settings"], folders=tuple(data["folders"]))


def find_dataset_record(folder) -> DatasetRecord | None:
    """The record of the dataset `folder` belongs to: in it or up to SEARCH_LEVELS folders above, covering it."""
    folder = absolute(folder)
    for root in (folder, *folder.parents[:SEARCH_LEVELS]):
        if (root / RECORD).is_file():
            record = read_dataset_record(root / RECORD)
            if record.covers(folder):
                return record
    return None


def _changes(old: DatasetRecord, new: DatasetRecord):
    """(what the folder was made with, what this run has) in words: the stage, else each setting that differs."""
    if old.stage != new.stage:
        return [(f"prn-prep {old.stage}", f"prn-prep {new.stage}")]
    pairs = []
    if old.model.fingerprint != new.model.fingerprint:
        pairs.append((f"model {old.model.describe()}", f"model {new.model.describe()}"))
    for key in list(new.settings) + [key for key in old.settings if key not in new.settings]:
        if old.settings.get(key) != new.settings.get(key):
            option = f"--{key.replace('_', '-')}"
            pairs.append((f"{option} {old.settings.get(key)}", f"{option} {new.settings.get(key)}"))
    return pairs


def _holds_samples(out_dir, folders):
    """Whether out_dir has .mat files at its top or anywhere in the named folders."""
    places = [out_dir.glob("*.mat")] + [(out_dir / name).rglob("*.mat") for name in folders]
    return any(next(place, None) is not None for place in places)


def claim_dataset(out_dir, stage, model_dir, settings: dict, folders=()) -> DatasetRecord:
    """Record (or check) what a stage run writes into out_dir, before it writes any sample.

    A new folder gets its record. A folder whose record has the same stage,
    model fingerprint and settings is resumed; its record is updated when the
    model folder moved or new top-level folders are added. Otherwise, or when
    the folder already holds samples (.mat files at its top or in `folders`)
    but no record, InputError names the folder and what differs. settings:
    JSON values only; folders: the top-level folders the stage writes into.
    """
    out_dir = Path(out_dir)
    new = DatasetRecord(path=absolute(out_dir / RECORD), stage=stage, model=model_record(model_dir),
                        settings=json.loads(json.dumps(settings)), folders=tuple(sorted(set(folders))))
    old = read_dataset_record(new.path) if new.path.is_file() else None
    if old is None and _holds_samples(out_dir, new.folders):
        raise InputError(f"{out_dir}: holds samples but no {RECORD} saying how they were made "
                         "(an older prn-prep?); use another --out folder")
    if old is not None:
        changes = _changes(old, new)
        if changes:
            raise InputError(f"{out_dir}: made with {', '.join(made for made, _ in changes)}; this run has "
                             f"{', '.join(asked for _, asked in changes)}: rerun with the same settings to "
                             "continue it, or use another --out folder")
        new = DatasetRecord(path=new.path, stage=stage, model=new.model, settings=new.settings,
                            folders=tuple(sorted(set(old.folders) | set(new.folders))))
        if new.to_json() == old.to_json():
            return old
    with atomic_path(new.path) as tmp:
        tmp.write_text(json.dumps(new.to_json(), indent=1, sort_keys=True) + "\n")
    return new


def model_for(where, recorded: ModelRecord, given=None) -> Path:
    """The model folder (absolute) to read data made with `recorded`; InputError (one line) when none fits.

    where: the file that records the model (named in messages). given: a
    folder the user named (--model), which must hold the same model; None:
    the recorded folder, or the built-in model regenerated when it was the one
    and its folder is gone.
    """
    if given is not None:
        found = model_record(absolute(given))
        if found.fingerprint != recorded.fingerprint:
            raise InputError(f"--model {given} is model {found.fingerprint[:SHORT]}, but {where} records model "
                             f"{recorded.describe()} for this data: leave out --model to use that one")
        return absolute(given)
    path = absolute(recorded.path)
    if not path.is_dir():
        if not recorded.builtin:
            raise InputError(f"{where}: the model this data was made with, {recorded.fingerprint[:SHORT]}, was at "
                             f"{recorded.path}, which no longer exists: pass --model DIR with that model")
        path = absolute(builtin_model_dir())
    found = model_record(path)
    if found.fingerprint != recorded.fingerprint:
        raise InputError(f"{where}: the data was made with model {recorded.fingerprint[:SHORT]}, but {path} now "
                         f"holds model {found.fingerprint[:SHORT]}: pass --model DIR with the model it was made "
                         "with")
    return path
