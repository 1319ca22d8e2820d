"""The one resolver of face models, their folders and UV assets (prn.pipeline.face_match)."""

import json
import shutil

import pytest

from prn.pipeline import face_match
from prn.pipeline.face_match import FaceModelClaim, face_model_claim, manifest_claim, resolve, shard_folder_claims
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import compute_uv_assets, write_uv_assets
from prn.rendering.util.errors import InputError


@pytest.fixture(scope="module")
def ours(small_model_dir, tmp_path_factory):
    """(fingerprint, a copy of the small model's folder with its UV assets at MODEL/uv256)."""
    folder = tmp_path_factory.mktemp("resolver") / "model"
    shutil.copytree(small_model_dir, folder)
    write_uv_assets(compute_uv_assets(load_morphable_model(folder)), folder / "uv256")
    return load_morphable_model(folder).fingerprint, folder


def claim(owner, fingerprint, folder=None, uv_dir=None):
    return FaceModelClaim(owner, fingerprint, folder, uv_dir)


def test_claims_that_disagree_are_refused_naming_both():
    with pytest.raises(InputError, match="^the shards a and the checkpoint b are of different face models, "
                                         "aaaaaaaaaaaa and bbbbbbbbbbbb: start a new --out$"):
        resolve([claim("the shards a", "a" * 64), claim("the shards c", None), claim("the checkpoint b", "b" * 64)],
                advice="start a new --out")
    assert resolve([claim("x", "a" * 64), claim("y", None), claim("z", "a" * 64)]).fingerprint == "a" * 64


def test_a_recorded_face_model_folder_is_found_and_checked(ours, small_model_dir, tmp_path):
    fingerprint, folder = ours
    found = resolve([claim("the shards s", fingerprint, folder)], face_model="required")
    assert found.face_model_dir == folder and found.fingerprint == fingerprint
    with pytest.raises(InputError, match=f"the face model the shards s was made with, {fingerprint[:12]}, was at "
                                         f"{tmp_path / 'gone'}, which no longer exists: pass --model DIR"):
        resolve([claim("the shards s", fingerprint, tmp_path / "gone")], face_model="required")
    with pytest.raises(InputError, match=f"but {small_model_dir} now holds face model "):
        resolve([claim("the shards s", "e" * 64, small_model_dir)], face_model="required")
    with pytest.raises(InputError, match='^data/300W_LP: no record of the 3D face model .* "Real data"$'):
        resolve([claim("data/300W_LP", None)], face_model="required")
    assert resolve([claim("data/300W_LP", None)], face_model="optional").face_model_dir is None


def test_a_given_face_model_must_be_the_claimed_one(ours, tmp_path):
    fingerprint, folder = ours
    assert resolve([claim("r", None)], face_model="required", given_face_model=folder).face_model_dir == folder
    with pytest.raises(InputError, match=f"^--fit-model {folder} is face model {fingerprint[:12]}, but the face "
                                         "model of the checkpoint c is ffffffffffff: give that face model's folder"):
        resolve([claim("the checkpoint c", "f" * 64)], face_model="optional", given_face_model=folder,
                face_model_option="--fit-model")


def test_the_builtin_face_model_is_regenerated_when_its_recorded_folder_is_gone(ours, monkeypatch, tmp_path):
    fingerprint, folder = ours
    monkeypatch.setattr(face_match, "builtin_fingerprint", lambda: fingerprint)
    monkeypatch.setattr(face_match, "builtin_face_model_dir", lambda: folder)
    found = resolve([claim("the record r", fingerprint, tmp_path / "moved")], face_model="required")
    assert found.face_model_dir == folder


def _shard_folder(folder, fingerprint, face_model_dir):
    """A shard folder whose manifest.json records the face model it was built with (no samples needed here)."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(
        {"shards": [], "model_fingerprint": fingerprint, "settings": {"model_dir": str(face_model_dir)}}))
    return folder


def test_hints_of_training_shards_give_a_fit_model_or_nothing(ours, tmp_path):
    """Gone, corrupt, of another model, moved or changed: passed over without an error; a good one is used."""
    fingerprint, folder = ours
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "manifest.json").write_text("{not json")
    changed = tmp_path / "changed-model"
    changed.mkdir()
    (changed / "BFM.mat").write_bytes(b"truncated")
    bad = [tmp_path / "gone", corrupt, _shard_folder(tmp_path / "other", "e" * 64, folder),
           _shard_folder(tmp_path / "moved", fingerprint, tmp_path / "moved-away"),
           _shard_folder(tmp_path / "changed", fingerprint, changed)]
    network = claim("the checkpoint c", fingerprint)
    hints = shard_folder_claims(bad)
    assert len(hints) == 3
    assert resolve([network], face_model="optional", hints=hints).face_model_dir is None
    good = shard_folder_claims([*bad, _shard_folder(tmp_path / "train", fingerprint, folder)])
    assert resolve([network], face_model="optional", hints=good).face_model_dir == folder


def test_uv_assets_at_the_face_models_default_place_are_found(ours, tmp_path):
    """`prn-prep uv-data --model M` writes M/uv256: shards that record M need no --uv-dir."""
    fingerprint, folder = ours
    shards = manifest_claim({"model_fingerprint": fingerprint, "settings": {"model_dir": str(folder)}},
                            "the shards s")
    found = resolve([shards], uv=True, uv_size=256)
    assert found.uv.folder == folder / "uv256" and found.note is None and found.fingerprint == fingerprint
    elsewhere = tmp_path / "model"
    shutil.copytree(folder, elsewhere, ignore=shutil.ignore_patterns("uv256"))
    with pytest.raises(InputError, match=f"^--uv-dir is needed: the face model of the shards s is {fingerprint[:12]}; "
                                         f"the built-in UV assets are of face model .*; {elsewhere / 'uv256'} does "
                                         "not exist \\(make them with prn-prep uv-data --model MODEL\\)$"):
        resolve([claim("the shards s", fingerprint, elsewhere)], uv=True, uv_size=256)


def test_given_or_recorded_uv_assets_are_checked_and_unrecorded_ones_taken_on_trust(ours, tmp_path):
    fingerprint, folder = ours
    network = claim("the checkpoint c", fingerprint, uv_dir=folder / "uv256")
    assert resolve([network], uv=True).uv.folder == folder / "uv256"
    with pytest.raises(InputError, match=f"^--uv-dir {folder / 'uv256'}: UV assets of face model {fingerprint[:12]}, "
                                         "but the face model of the checkpoint d is ffffffffffff"):
        resolve([claim("the checkpoint d", "f" * 64)], uv=True, given_uv=folder / "uv256")
    gone = claim("the checkpoint e", "f" * 64, uv_dir=tmp_path / "gone")
    with pytest.raises(InputError, match=f"--uv-dir is needed: .*; {tmp_path / 'gone'} no longer exists"):
        resolve([gone], uv=True)
    legacy = tmp_path / "legacy"
    shutil.copytree(folder / "uv256", legacy)
    (legacy / "model.json").unlink()
    found = resolve([claim("the shards s", fingerprint)], uv=True, given_uv=legacy)
    assert found.note == (f"{legacy}: the UV assets record no face model (no model.json); taken on trust to be of "
                          f"face model {fingerprint[:12]}")


def test_a_face_model_folder_claims_itself(ours):
    fingerprint, folder = ours
    assert face_model_claim(folder) == FaceModelClaim(str(folder), fingerprint, folder)
