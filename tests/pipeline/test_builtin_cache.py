"""The built-in model's cache: made once, checked once per process, made again when damaged or replaced."""

import pytest

import prn.pipeline.synthetic.builtin as builtin
from prn.rendering.morphable.bfm import MODEL_FILE, load_morphable_model
from prn.rendering.util.errors import InputError

VERTICES = 1500


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(builtin, "_checked", set())
    return tmp_path / "cache"


def fresh_process():
    builtin._checked.clear()


def test_a_damaged_or_replaced_cache_is_made_again(cache):
    folder = builtin.builtin_face_model_dir(n_vertices=VERTICES)
    expected = load_morphable_model(folder).fingerprint
    original = (folder / MODEL_FILE).read_bytes()
    other = builtin.builtin_face_model_dir(n_vertices=VERTICES, seed=1)
    for damage in ("truncated", "another model", "checksums missing", "extra file"):
        if damage == "truncated":
            (folder / MODEL_FILE).write_bytes(original[:len(original) // 2])
        elif damage == "another model":
            (folder / MODEL_FILE).write_bytes((other / MODEL_FILE).read_bytes())
        elif damage == "checksums missing":
            (folder / builtin.CHECKSUMS_FILE).unlink()
        else:
            (folder / "stray.npy").write_bytes(b"x")
        fresh_process()
        assert builtin.builtin_face_model_dir(n_vertices=VERTICES) == folder
        assert load_morphable_model(folder).fingerprint == expected, damage
        assert (folder / MODEL_FILE).read_bytes() == original, damage
    assert load_morphable_model(other).fingerprint != expected


def test_an_intact_cache_is_read_not_made(cache, monkeypatch):
    folder = builtin.builtin_face_model_dir(n_vertices=VERTICES)
    fresh_process()
    monkeypatch.setattr(builtin, "write_synthetic_model", lambda *args: pytest.fail("made again"))
    assert builtin.builtin_face_model_dir(n_vertices=VERTICES) == folder


def test_a_cache_root_that_is_a_file_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("PRN_CACHE_DIR", str(tmp_path / "file"))
    monkeypatch.setattr(builtin, "_checked", set())
    with pytest.raises(InputError, match="the model cache folder is a file"):
        builtin.builtin_face_model_dir(n_vertices=VERTICES)
