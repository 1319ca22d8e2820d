"""prn-dataset.json: the face model (3D morphable model) and the settings a dataset folder was made with.

`prn-prep synth` and `prn-prep fit` write it at the root of their output (the
--out folder) before the first sample. A rerun with other settings stops
instead of mixing samples of two kinds; `build` reads the record to use the
face model the samples' coefficients belong to (pipeline/face_match.py). One JSON object:

    {"format": "prn-dataset", "version": 1, "stage": "synth" | "fit",
     "model": {"fingerprint": sha256 hex (MorphableModel.fingerprint),
               "path": the absolute model folder, "builtin": true for the built-in model},
     "settings": {the stage's settings that change the samples' bytes},
     "folders": [the top-level folders under the root that hold the samples]}

Real 300W-LP and AFLW2000-3D carry no record: their face model has to be named.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from prn.pipeline.face_match import FaceModelClaim, absolute, face_model_claim
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError, first_line

RECORD = "prn-dataset.json"
FORMAT = "prn-dataset"
VERSION = 1
SEARCH_LEVELS = 2    # a record may sit this many folders above the dataset folder (DATA/300W_LP)


@dataclass(frozen=True)
class DatasetRecord:
    """The parsed prn-dataset.json of a dataset folder."""

    path: Path              # the record file
    stage: str
    face_model: FaceModelClaim
    settings: dict
    folders: tuple

    def covers(self, folder) -> bool:
        """Whether `folder` (the record's folder or one below it) holds data the record describes."""
        inside = absolute(folder).relative_to(absolute(self.path.parent)).parts
        return not inside or inside[0] in self.folders

    def to_json(self) -> dict:
        claim = self.face_model
        return {"format": FORMAT, "version": VERSION, "stage": self.stage,
                "model": {"fingerprint": claim.fingerprint, "path": str(claim.folder), "builtin": claim.builtin},
                "settings": self.settings, "folders": list(self.folders)}


def read_dataset_record(path) -> DatasetRecord:
    """Parse a prn-dataset.json; InputError (one line) when it is unreadable or malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not readable JSON ({first_line(error)})") from None
    face_model = data.get("model") if isinstance(data, dict) else None
    if not (isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("stage"), str)
            and isinstance(face_model, dict) and isinstance(face_model.get("fingerprint"), str)
            and isinstance(face_model.get("path"), str) and isinstance(data.get("settings"), dict)
            and isinstance(data.get("folders"), list)):
        raise InputError(f"{path}: malformed (expected a {FORMAT} record: stage, model {{fingerprint, path}}, "
                         "settings, folders)")
    if data.get("version") != VERSION:
        raise InputError(f"{path}: record version {data.get('version')!r}, this prn-prep reads {VERSION}")
    return DatasetRecord(path=path, stage=data["stage"], face_model=FaceModelClaim(str(path), face_model["fingerprint"],
                                                                                    Path(face_model["path"])),
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


def _changes(old: DatasetRecord, new: DatasetRecord, unrecorded):
    """(what the folder was made with, what this run has) in words: the stage, else each setting that differs.

    unrecorded: {setting: value} a record without the setting was made with (a setting added later)."""
    if old.stage != new.stage:
        return [(f"prn-prep {old.stage}", f"prn-prep {new.stage}")]
    pairs = []
    if old.face_model.fingerprint != new.face_model.fingerprint:
        pairs.append((f"face model {old.face_model.describe()}", f"face model {new.face_model.describe()}"))
    for key in list(new.settings) + [key for key in old.settings if key not in new.settings]:
        made, asked = (settings.get(key, unrecorded.get(key)) for settings in (old.settings, new.settings))
        if made != asked:
            option = f"--{key.replace('_', '-')}"
            pairs.append((f"{option} {made}", f"{option} {asked}"))
    return pairs


def _holds_samples(out_dir, folders):
    """Whether out_dir has .mat files at its top or anywhere in the named folders."""
    places = [out_dir.glob("*.mat")] + [(out_dir / name).rglob("*.mat") for name in folders]
    return any(next(place, None) is not None for place in places)


def claim_dataset(out_dir, stage, face_model_dir, settings: dict, folders=(), unrecorded=None) -> DatasetRecord:
    """Record (or check) what a stage run writes into out_dir, before it writes any sample.

    A new folder gets its record. A folder whose record has the same stage,
    model fingerprint and settings is resumed; its record is updated when the
    model folder moved or new top-level folders are added. Otherwise, or when
    the folder already holds samples (.mat files at its top or in `folders`)
    but no record, InputError names the folder and what differs. settings:
    JSON values only; folders: the top-level folders the stage writes into;
    unrecorded: {setting: value} of settings added after folders were made
    without them: a setting at that value is not written, so those folders
    continue and their records stay as they were.
    """
    out_dir = Path(out_dir)
    unrecorded = unrecorded or {}
    settings = {key: value for key, value in settings.items()
                if key not in unrecorded or unrecorded[key] != value}
    record = absolute(out_dir / RECORD)
    new = DatasetRecord(path=record, stage=stage, face_model=face_model_claim(face_model_dir, str(record)),
                        settings=json.loads(json.dumps(settings)), folders=tuple(sorted(set(folders))))
    old = read_dataset_record(new.path) if new.path.is_file() else None
    if old is None and _holds_samples(out_dir, new.folders):
        raise InputError(f"{out_dir}: holds samples but no {RECORD} saying how they were made "
                         "(an older prn-prep?); use another --out folder")
    if old is not None:
        changes = _changes(old, new, unrecorded)
        if changes:
            raise InputError(f"{out_dir}: made with {', '.join(made for made, _ in changes)}; this run has "
                             f"{', '.join(asked for _, asked in changes)}: rerun with the same settings to "
                             "continue it, or use another --out folder")
        new = DatasetRecord(path=new.path, stage=stage, face_model=new.face_model, settings=new.settings,
                            folders=tuple(sorted(set(old.folders) | set(new.folders))))
        if new.to_json() == old.to_json():
            return old
    with atomic_path(new.path) as tmp:
        tmp.write_text(json.dumps(new.to_json(), indent=1, sort_keys=True) + "\n")
    return new
