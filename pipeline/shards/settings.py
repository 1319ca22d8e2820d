"""What a shard folder records of the stage that made it, from one source: the stage's settings.

recorded_settings gives the manifest's `settings`; the record key of each
shard and the file attributes are read from it, so the three always agree.
"""

from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from prn.pipeline.shards.schema import ATTRIBUTES, CROP_SIZE, SCHEMA_VERSION, UV_SIZE

# Settings that the record key leaves out: the model is keyed by its fingerprint, the shard size by the inputs.
NOT_KEYED = ("model_dir", "shard_size")


def tool_version():
    try:
        return version("prn-toolkit")
    except PackageNotFoundError:
        return "unknown"


def _as_json(value):
    """A settings value as JSON reads it back: paths as strings, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_as_json(item) for item in value]
    return value


# Fields recorded under another name: the manifest's "model_dir" is the face model folder.
RECORDED_NAMES = {"face_model_dir": "model_dir"}


def recorded_settings(settings) -> dict:
    """The fields of a stage's settings dataclass but out_dir, as JSON values (the manifest's `settings`)."""
    return {RECORDED_NAMES.get(name, name): _as_json(value) for name, value in asdict(settings).items()
            if name != "out_dir"}


def format_entries(fingerprint) -> dict:
    """The entries that the manifest, the record keys and the file attributes all hold."""
    return {"schema_version": SCHEMA_VERSION, "model_fingerprint": fingerprint, "uv_size": UV_SIZE}


def shard_key(settings, fingerprint) -> dict:
    """What a shard's content depends on besides its inputs: the recorded settings but NOT_KEYED, and the sizes."""
    keyed = {name: value for name, value in recorded_settings(settings).items() if name not in NOT_KEYED}
    return {**keyed, **format_entries(fingerprint), "crop_size": CROP_SIZE}


def shard_attributes(fingerprint, settings) -> dict:
    """The file attributes of a shard: the schema's setting attributes from the recorded settings, and the rest."""
    recorded = recorded_settings(settings)
    chosen = {attribute.name: recorded[attribute.name] for attribute in ATTRIBUTES if attribute.setting}
    return {**chosen, **format_entries(fingerprint), "tool_version": tool_version()}
