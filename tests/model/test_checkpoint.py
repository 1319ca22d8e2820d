"""The checkpoint format (prn.model.checkpoint): save, resume, load for inference, one-line errors."""

import json
from pathlib import Path

import pytest
import torch

from prn.model.checkpoint import CHECKPOINT, Position, load_for_resume, load_trained, save_checkpoint
from prn.model.network_config import NetworkConfig, make_network
from prn.model.training.config import config_from
from prn.model.training.train import make_optimizer
from prn.pipeline.face_match import FaceModelClaim
from prn.rendering.util.errors import InputError

MODEL = "0123456789ab" + "c" * 52   # a model fingerprint

def tiny(tmp_path, **options):
    values = {"data": [tmp_path / "data"], "val": str(tmp_path / "val"), "out": str(tmp_path),
              "uv_dir": str(tmp_path / "uv"), "size": 64, "base": 4, **options}
    return config_from("tiny", **values)


def trained_run(config):
    """(network, optimizer, scheduler) after one Adam step and one scheduler step."""
    torch.manual_seed(0)
    network = make_network(config)
    optimizer, scheduler = make_optimizer(network, config)
    network(torch.rand(2, 3, config.size, config.size)).mean().backward()
    optimizer.step()
    scheduler.step()
    return network, optimizer, scheduler


@pytest.fixture
def saved(tmp_path):
    config = tiny(tmp_path)
    network, optimizer, scheduler = trained_run(config)
    save_checkpoint(tmp_path / CHECKPOINT, network, optimizer, scheduler, config, Position(4, 12, 0.25), MODEL)
    return tmp_path / CHECKPOINT, config, network


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_saved_run_resumes_and_loads_for_inference(saved):
    path, config, network = saved
    state = torch.load(path, weights_only=True)
    assert json.loads(state["config"])["base"] == 4 and not list(path.parent.glob(".*.tmp"))
    saved_rng = state["torch_rng"]

    fresh = make_network(config)
    optimizer, scheduler = make_optimizer(fresh, config)
    torch.rand(10)
    assert load_for_resume(path, config, fresh, optimizer, scheduler) == Position(4, 12, 0.25)
    assert same_weights(fresh, network) and torch.equal(torch.get_rng_state(), saved_rng)
    assert scheduler.last_epoch == 1 and optimizer.state_dict()["state"]

    trained = load_trained(path)
    assert trained.config == NetworkConfig(config.backbone, config.base, config.kernel, config.size)
    assert (trained.data, trained.val) == (config.data, config.val)
    assert trained.face_model == FaceModelClaim(f"the checkpoint {path}", MODEL, uv_dir=Path(config.uv_dir))
    assert not trained.network.training and same_weights(trained.network, network)
    assert "network" in state and "model" not in state   # the weights' key of new checkpoints


def problems(path, tmp_path):
    """{name: (a bad checkpoint file, the words its error holds)} made from the good one at `path`."""
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "truncated.pt").write_bytes(path.read_bytes()[:2000])
    torch.save({"model": {}}, tmp_path / "partial.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    state = torch.load(path, weights_only=True)
    torch.save({**state, "config": json.dumps({**json.loads(state["config"]), "base": 8})}, tmp_path / "other.pt")
    torch.save({**state, "config": "{not json"}, tmp_path / "badconfig.pt")
    torch.save({**state, "config": json.dumps({**json.loads(state["config"]), "size": -5})}, tmp_path / "size.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    return {"missing": (tmp_path / "missing.pt", "no such checkpoint"),
            "corrupt": (tmp_path / "corrupt.pt", "not a readable checkpoint"),
            "truncated": (tmp_path / "truncated.pt", "not a readable checkpoint"),
            "partial": (tmp_path / "partial.pt", "not a readable checkpoint (it lacks config"),
            "tensor": (tmp_path / "tensor.pt", "not a readable checkpoint (it lacks network"),
            "badconfig": (tmp_path / "badconfig.pt", "not a readable checkpoint (its config"),
            "size": (tmp_path / "size.pt", "not a readable checkpoint (its config: size: must be a multiple of 32"),
            "empty": (tmp_path / "empty.pt", "not a readable checkpoint (an empty file)"),
            "other": (tmp_path / "other.pt", "do not fit")}


def one_line(error, path, words):
    message = str(error.value)
    assert len(message.splitlines()) == 1 and str(path) in message and words in message, message


def test_bad_checkpoints_are_one_line_naming_the_file(saved, tmp_path):
    path, config, _ = saved
    for name, (bad, words) in problems(path, tmp_path).items():
        with pytest.raises(InputError) as error:
            load_trained(bad)
        one_line(error, bad, words)
        if name == "other":
            continue  # resuming compares the configs first: the next test
        network = make_network(config)
        with pytest.raises(InputError) as error:
            load_for_resume(bad, config, network, *make_optimizer(network, config))
        one_line(error, bad, words)


def test_resuming_with_another_network_is_one_line(saved, tmp_path):
    path, config, _ = saved
    other = tiny(tmp_path, backbone="mobilenet")
    network = make_network(other)
    with pytest.raises(InputError) as error:
        load_for_resume(path, other, network, *make_optimizer(network, other))
    one_line(error, path, "the run was made with another network (backbone resfcn)")
    # the weights of a checkpoint whose config was changed do not fit the network of the stored config
    state = torch.load(path, weights_only=True)
    bigger = tiny(tmp_path, base=8)
    torch.save({**state, "config": json.dumps({**json.loads(state["config"]), "base": 8})}, tmp_path / "other.pt")
    network = make_network(bigger)
    with pytest.raises(InputError) as error:
        load_for_resume(tmp_path / "other.pt", bigger, network, *make_optimizer(network, bigger))
    one_line(error, tmp_path / "other.pt", "do not fit")


def test_resuming_for_another_model_is_one_line_and_older_checkpoints_have_none(saved, tmp_path):
    path, config, _ = saved
    network = make_network(config)
    with pytest.raises(InputError) as error:
        load_for_resume(path, config, network, *make_optimizer(network, config),
                        FaceModelClaim("these shards", "f" * 64))
    one_line(error, path, f"the run's checkpoint {path} and these shards are of different face models, "
                          "0123456789ab and ffffffffffff: start a new --out")
    ours = FaceModelClaim("these shards", MODEL)
    assert load_for_resume(path, config, network, *make_optimizer(network, config), ours) == Position(4, 12, 0.25)
    state = torch.load(path, weights_only=True)
    del state["model_fingerprint"]
    state["model"] = state.pop("network")   # the weights' key before "network"
    torch.save(state, tmp_path / "older.pt")
    older = load_trained(tmp_path / "older.pt")
    assert older.face_model.fingerprint is None and same_weights(older.network, network)
    assert load_for_resume(tmp_path / "older.pt", config, network, *make_optimizer(network, config), ours)


def test_a_failed_write_names_the_file_and_keeps_the_previous_checkpoint(saved, monkeypatch):
    path, config, network = saved
    before = path.read_bytes()

    def full_disk(state, file):
        with open(file, "wb") as handle:
            handle.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/3: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    optimizer, scheduler = make_optimizer(network, config)
    with pytest.raises(OSError) as error:
        save_checkpoint(path, network, optimizer, scheduler, config, Position(5, 13, 0.2), MODEL)
    assert error.value.filename == str(path) and "PytorchStreamWriter failed writing file" in error.value.strerror
    assert "disk full" in error.value.strerror and "\n" not in error.value.strerror
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == [CHECKPOINT]
