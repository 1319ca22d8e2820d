"""Which UV assets go with the shards and the network: the morphable model's fingerprint decides.

UV asset folders record the model they were computed from (model.json,
`UVAssetFolder.model_fingerprint`), shard folders theirs (the manifest's
`model_fingerprint`) and checkpoints the model their network was trained for
(model/checkpoint.py). Assets of another model than the shards' or the
checkpoint's are refused with one line naming both fingerprints and paths. A
folder that records no model (the original PRN's uv-data) is taken on trust
as the expected model's, and `ChosenUV.note` says so in one line.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from prn.rendering.morphable.uv_assets import UVAssetFolder, load_uv_assets
from prn.rendering.util.errors import InputError
from prn.uv_data import builtin_uv_dir

SHORT = 12   # hex digits of a fingerprint in messages
MAKE_THEM = "prn-prep uv-data --model MODEL --out DIR"


@dataclass(frozen=True)
class ChosenUV:
    """UV assets with the model they are taken to belong to."""

    uv: UVAssetFolder
    model_fingerprint: str | None   # the assets' own, else the expected one (on trust), else None
    note: str | None                # one line when the folder records no model


def short(fingerprint) -> str:
    return fingerprint[:SHORT] if fingerprint else "unknown"


@lru_cache(maxsize=1)
def builtin_fingerprint() -> str | None:
    """The model fingerprint recorded by the built-in UV assets."""
    return load_uv_assets(builtin_uv_dir()).model_fingerprint


def shard_fingerprint(manifest) -> str | None:
    """The model fingerprint a shard folder's manifest records (None when it records none)."""
    fingerprint = manifest.get("model_fingerprint")
    return fingerprint if isinstance(fingerprint, str) else None


def choose_uv(given, expected, owner, recorded=None, size=None) -> ChosenUV:
    """The UV assets for data or a network of model `expected` (a fingerprint, None when unknown).

    owner: who has that model, in words ending with it, for messages (e.g.
    'the shards data/train are of model 0123456789ab'). given: the --uv-dir
    folder, or None to pick: `recorded` (the folder a checkpoint was trained
    with) when it exists and its model is `expected` or either is unknown,
    else the built-in assets when their model is `expected`. size: the map
    side the assets must have. InputError (one line) when the assets given
    are of another model, or when none fit.
    """
    if given is not None:
        uv = load_uv_assets(given, size)
        if uv.model_fingerprint and expected and uv.model_fingerprint != expected:
            raise InputError(f"--uv-dir {uv.folder}: UV assets of model {short(uv.model_fingerprint)}, but {owner}: "
                             f"give that model's UV assets ({MAKE_THEM})")
        return _chosen(uv, expected)
    tried = []
    if recorded is not None:
        if Path(recorded).is_dir():
            uv = load_uv_assets(recorded, size)
            if not (uv.model_fingerprint and expected) or uv.model_fingerprint == expected:
                return _chosen(uv, expected)
            tried.append(f"{recorded} is of model {short(uv.model_fingerprint)}")
        else:
            tried.append(f"{recorded} no longer exists")
    if expected is not None and builtin_fingerprint() == expected:
        return _chosen(load_uv_assets(builtin_uv_dir(), size), expected)
    tried.append(f"the built-in UV assets are of model {short(builtin_fingerprint())}")
    raise InputError(f"--uv-dir is needed: {owner}; {'; '.join(tried)} (make them with {MAKE_THEM})")


def _chosen(uv: UVAssetFolder, expected) -> ChosenUV:
    if uv.model_fingerprint is not None:
        return ChosenUV(uv, uv.model_fingerprint, None)
    trust = f"taken on trust to be of model {short(expected)}" if expected else "used without a check"
    return ChosenUV(uv, expected, f"{uv.folder}: the UV assets record no model (no model.json); {trust}")
