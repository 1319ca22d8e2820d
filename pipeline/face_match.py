"""Which face model (the 3D morphable model) an artefact belongs to, and the folders that go with it: the one place.

Every artefact says what it knows of its face model the same way, as a
FaceModelClaim: a dataset record (prn-dataset.json), a shard folder (its
manifest.json), a checkpoint (the fingerprint it was trained for and its UV
folder). `resolve` takes the claims of the artefacts a command uses and the
user's options, and returns the fingerprint they share, the face model folder
and the UV assets; each refusal is one line built from what the claims say.

Where each is looked for, in order:

* the face model folder: the one given (--model, --fit-model; it must hold
  the claimed model), else a folder a claim records that still holds it,
  else the built-in model when it is the one (regenerated when its cache is
  gone);
* the UV assets: the folder given (--uv-dir, checked), else one a claim
  records (a checkpoint's training UV assets), else the built-in assets when
  of the model, else FACE_MODEL/uv<size> of the face model folder given or
  recorded (where `prn-prep uv-data` writes by default).

UV assets record their model in model.json; a folder that records none (the
original PRN's uv-data) is taken on trust, and `Resolved.note` says so.
"""

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from prn.pipeline.shards import load_manifest
from prn.pipeline.stage import worker_morphable_model
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.rendering.morphable.uv_assets import UVAssetFolder, load_uv_assets
from prn.rendering.util.errors import InputError, first_line
from prn.uv_data import builtin_uv_dir

SHORT = 12                        # hex digits of a fingerprint in messages
FACE_MODEL_ENV = "PRN_MODEL_DIR"  # the face model folder of commands that make data, when --model is not given
MAKE_UV = "prn-prep uv-data --model MODEL"


def short(fingerprint) -> str:
    """A fingerprint as messages show it: its first SHORT hex digits, or "unknown"."""
    return fingerprint[:SHORT] if fingerprint else "unknown"


def absolute(path) -> Path:
    """An absolute, normalised path (symbolic links kept)."""
    return Path(os.path.abspath(path))


@lru_cache(maxsize=1)
def builtin_fingerprint() -> str:
    """The built-in synthetic face model's fingerprint, as its shipped UV assets record it."""
    return load_uv_assets(builtin_uv_dir()).face_model_fingerprint


@dataclass(frozen=True)
class FaceModelClaim:
    """What an artefact records of its face model."""

    owner: str                      # the artefact in words, for messages: "the shards data/train"
    fingerprint: str | None         # None: it records no face model
    folder: Path | None = None      # the face model folder it was made from, when recorded
    uv_dir: Path | None = None      # the UV assets it was made or trained with, when recorded

    @property
    def builtin(self) -> bool:
        return self.fingerprint is not None and self.fingerprint == builtin_fingerprint()

    def describe(self) -> str:
        """'9f8e7d6c5b4a (at /data/bfm)', or '9f8e7d6c5b4a (built-in, at ...)'."""
        where = f"built-in, at {self.folder}" if self.builtin else f"at {self.folder}"
        return f"{short(self.fingerprint)} ({where})"


def face_model_claim(face_model_dir, owner=None) -> FaceModelClaim:
    """The claim of a face model folder itself (the model loaded once per process); InputError when unusable."""
    folder = absolute(face_model_dir)
    return FaceModelClaim(owner or str(folder), worker_morphable_model(folder).fingerprint, folder)


def manifest_claim(manifest, owner) -> FaceModelClaim:
    """What a shard folder's manifest.json says of its face model (its fingerprint and the settings' model_dir)."""
    fingerprint = manifest.get("model_fingerprint")
    folder = (manifest.get("settings") or {}).get("model_dir")
    return FaceModelClaim(owner, fingerprint if isinstance(fingerprint, str) else None,
                          Path(folder) if isinstance(folder, str) else None)


def shard_folder_claims(folders) -> list:
    """The claims of the shard folders whose manifest.json can still be read (a record of where data was made:
    folders that are gone or unreadable are passed over)."""
    claims = []
    for folder in folders:
        try:
            claims.append(manifest_claim(load_manifest(folder), f"the shards {folder}"))
        except InputError:
            continue
    return claims


@dataclass(frozen=True)
class Resolved:
    """What goes with a set of artefacts."""

    fingerprint: str | None         # the face model they share (else the UV assets'); None: unknown
    face_model_dir: Path | None     # a folder of that model; None when not asked for or (optional) not found
    uv: UVAssetFolder | None        # None when not asked for
    note: str | None = None         # one line when the UV assets are taken on trust


def resolve(claims, *, face_model="no", given_face_model=None, face_model_option="--model", uv=False,
            given_uv=None, uv_size=None, advice=None, hints=()) -> Resolved:
    """The face model, its folder and UV assets that go with every claim (a sequence of FaceModelClaim).

    face_model: "no" (not looked for), "optional" (None when none is found),
    or "required" (InputError when none is); given_face_model: the folder
    the user named (face_model_option in messages). uv: look for UV assets
    (given_uv: --uv-dir) of side uv_size (None: any). advice: what to do when
    the claims disagree, appended to that message. InputError, one line, when
    the claims disagree or a folder given or found holds another model.
    hints: claims of where related data was made (a network's training
    shards, shard_folder_claims), consulted for face model folders (and their
    uv<size>) only: those of another model are passed over.
    """
    claims = list(claims)
    fingerprint = _agreed(claims, advice)
    given = None if given_face_model is None else face_model_claim(given_face_model, face_model_option)
    if given is not None and fingerprint is not None and given.fingerprint != fingerprint:
        raise InputError(f"{face_model_option} {given_face_model} is face model {short(given.fingerprint)}, but "
                         f"{_says(claims, fingerprint)}: give that face model's folder, or leave out "
                         f"{face_model_option} to use the recorded one")
    fingerprint = fingerprint or (given.fingerprint if given is not None else None)
    def hinted():   # the hints of the fingerprint known so far
        return [claim for claim in hints if fingerprint is not None and claim.fingerprint == fingerprint]

    found, note = None, None
    if uv:
        model_folders = [claim.folder for claim in [given, *claims, *hinted()] if claim is not None and claim.folder]
        found = _uv_assets(claims, fingerprint, given_uv, uv_size, model_folders)
        if found.face_model_fingerprint is None:
            trust = f"taken on trust to be of face model {short(fingerprint)}" if fingerprint else \
                "used without a check"
            note = f"{found.folder}: the UV assets record no face model (no model.json); {trust}"
        fingerprint = fingerprint or found.face_model_fingerprint
    folder = None
    if face_model != "no":
        folder = given.folder if given is not None else _face_model_folder([*claims, *hinted()], fingerprint,
                                                                           face_model)
    return Resolved(fingerprint, folder, found, note)


def _agreed(claims, advice) -> str | None:
    """The fingerprint the claims that record one share; InputError naming the first two that differ."""
    known = [claim for claim in claims if claim.fingerprint is not None]
    for claim in known[1:]:
        if claim.fingerprint != known[0].fingerprint:
            tail = f": {advice}" if advice else ""
            raise InputError(f"{known[0].owner} and {claim.owner} are of different face models, "
                             f"{short(known[0].fingerprint)} and {short(claim.fingerprint)}{tail}")
    return known[0].fingerprint if known else None


def _says(claims, fingerprint) -> str:
    """'the face model of the shards S and the checkpoint C is X', or '... of the shards S is not recorded'."""
    owners = [claim.owner for claim in claims if claim.fingerprint is not None]
    if not owners:
        return f"the face model of {claims[0].owner} is not recorded" if claims else "no face model is recorded"
    return f"the face model of {' and '.join(owners)} is {short(fingerprint)}"


def _face_model_folder(claims, fingerprint, need) -> Path | None:
    """A folder of face model `fingerprint`: one a claim records that still holds it, else the built-in one."""
    tried = []
    if fingerprint is not None:
        for claim in claims:
            if claim.folder is None or claim.fingerprint is None:
                continue
            path = absolute(claim.folder)
            if not path.is_dir():
                tried.append(f"the face model {claim.owner} was made with, {short(fingerprint)}, was at "
                             f"{claim.folder}, which no longer exists")
                continue
            try:
                held = worker_morphable_model(path).fingerprint
            except InputError as error:
                tried.append(str(error))
                continue
            if held == fingerprint:
                return path
            tried.append(f"{claim.owner} was made with face model {short(fingerprint)}, but {path} now holds face "
                         f"model {short(held)}")
        if fingerprint == builtin_fingerprint():
            return absolute(builtin_face_model_dir())
    if need == "optional":
        return None
    if fingerprint is None:
        owner = claims[0].owner if claims else "the data"
        raise InputError(f"{owner}: no record of the 3D face model this data was made with (real 300W-LP and "
                         f"AFLW2000-3D have none): pass --model DIR or set {FACE_MODEL_ENV}, see README.md, "
                         '"Real data"')
    raise InputError(f"{'; '.join(tried)}: pass --model DIR with that face model")


def _uv_assets(claims, fingerprint, given, size, model_folders) -> UVAssetFolder:
    """The UV assets of face model `fingerprint` (None: unknown), looked for as the module doc says."""
    if given is not None:
        found = load_uv_assets(given, size)
        if found.face_model_fingerprint and fingerprint and found.face_model_fingerprint != fingerprint:
            raise InputError(f"--uv-dir {found.folder}: UV assets of face model {short(found.face_model_fingerprint)}, "
                             f"but {_says(claims, fingerprint)}: give that face model's UV assets ({MAKE_UV})")
        return found
    tried = []

    def fits(path, unrecorded_ok):
        """The assets at `path` when they are of the model (or either is unknown and unrecorded_ok), else None."""
        if not Path(path).is_dir():
            tried.append(f"{path} no longer exists" if unrecorded_ok else f"{path} does not exist")
            return None
        try:
            found = load_uv_assets(path, size)
        except InputError as error:
            tried.append(first_line(error))
            return None
        theirs = found.face_model_fingerprint
        if theirs == fingerprint or (unrecorded_ok and not (theirs and fingerprint)):
            return found
        tried.append(f"{path} is of face model {short(found.face_model_fingerprint)}")
        return None

    for claim in claims:
        if claim.uv_dir is not None and (found := fits(claim.uv_dir, True)) is not None:
            return found
    if fingerprint is not None and fingerprint == builtin_fingerprint():
        return load_uv_assets(builtin_uv_dir(), size)
    tried.append(f"the built-in UV assets are of face model {short(builtin_fingerprint())}")
    if fingerprint is not None:
        for folder in dict.fromkeys(absolute(path) for path in model_folders):
            if (found := fits(folder / f"uv{size or 256}", False)) is not None:
                return found
    raise InputError(f"--uv-dir is needed: {_says(claims, fingerprint)}; {'; '.join(tried)} (make them with "
                     f"{MAKE_UV})")
