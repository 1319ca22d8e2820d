"""Damaged checkpoints through the commands that read them: prn-eval, prn-predict and prn-train --resume."""

import json
import pickle

import pytest
import torch
from click.testing import CliRunner
from conftest import synthetic_shards

from prn.cli import eval as eval_cli
from prn.cli import predict as predict_cli
from prn.cli import train as train_cli
from prn.model.checkpoint import CHECKPOINT
from prn.model.training.config import config_from
from prn.model.training.train import train
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import compute_uv_assets, write_uv_assets


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_model_dir):
    """AFLW2000-layout shards of the small model (and their photos), its UV assets, a 1-step checkpoint."""
    root = tmp_path_factory.mktemp("checkpoint-commands")
    shards = synthetic_shards(root, small_model_dir, 8, seed=6, layout="aflw2000")
    write_uv_assets(compute_uv_assets(load_morphable_model(small_model_dir), 256), root / "uv")
    train(config_from("tiny", data=[str(shards)], val=str(shards), out=str(root / "run"), uv_dir=str(root / "uv"),
                      size=64, base=4, batch_size=4, epochs=1, max_steps=1, workers=0), progress=lambda line: None)
    return {"shards": shards, "uv": root / "uv", "photos": root / "raw-6" / "AFLW2000",
            "checkpoint": root / "run" / CHECKPOINT}


def damage(kind, good, path):
    """Write a damaged copy of the checkpoint `good` to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "pickle5":   # torch warns of the protocol before refusing it
        path.write_bytes(pickle.dumps({"model": {}}, protocol=5))
    elif kind == "nan":
        state = torch.load(good, weights_only=True)
        first = next(name for name, tensor in state["network"].items() if tensor.is_floating_point())
        state["network"][first][...] = float("nan")
        torch.save(state, path)
    else:
        state = torch.load(good, weights_only=True)
        state["config"] = json.dumps({**json.loads(state["config"]), "size": -5})
        torch.save(state, path)
    return path


def the_error(result, path, words):
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines() == [result.output.strip()], result.output
    assert result.output.startswith(f"Error: {path}: {words}"), result.output


@pytest.mark.parametrize("kind, words", [
    ("empty", "not a readable checkpoint (an empty file)"),
    ("truncated", "not a readable checkpoint (PytorchStreamReader failed reading zip archive"),
    ("text", "not a readable checkpoint (not a file torch.save wrote, or cut short)"),
    ("pickle5", "not a readable checkpoint (Weights only load failed)"),
    ("size", "not a readable checkpoint (its config: size: must be a multiple of 32 >= 32, got -5)"),
    ("nan", "the network's weights hold NaN or inf (encoder."),
])
def test_a_damaged_checkpoint_is_one_line_in_every_command(tmp_path, trained, kind, words, recwarn):
    bad = damage(kind, trained["checkpoint"], tmp_path / "run" / CHECKPOINT)
    runner = CliRunner()
    result = runner.invoke(eval_cli.main, ["--data", str(trained["shards"]), "--checkpoint", str(bad),
                                           "--out", str(tmp_path / "eval")])
    the_error(result, bad, words)
    result = runner.invoke(predict_cli.main, ["--checkpoint", str(bad), str(trained["photos"]),
                                              "--out", str(tmp_path / "predict"), "--bbox", "0,0,50,50"])
    the_error(result, bad, words)
    result = runner.invoke(train_cli.main, ["--preset", "tiny", "--data", str(trained["shards"]),
                                            "--val", str(trained["shards"]), "--uv-dir", str(trained["uv"]),
                                            "--out", str(tmp_path / "run"), "--resume", "--max-steps", "1",
                                            "--batch-size", "4", "--workers", "0"])
    the_error(result, bad, words)
    result = runner.invoke(predict_cli.main, ["--checkpoint", str(bad), "--export-onnx", str(tmp_path / "n.onnx")])
    the_error(result, bad, words)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    assert [path.name for path in (tmp_path / "run").iterdir()] == [CHECKPOINT]
    assert not [str(warning.message) for warning in recwarn.list if "pickle" in str(warning.message)]



def test_init_starts_from_a_checkpoints_weights_at_another_size(tmp_path, trained):
    """--init loads the weights (a 64-px run into a 96-px one: the network is fully convolutional)."""
    from prn.model.checkpoint import load_trained
    from prn.model.training.train import set_up

    config = config_from("tiny", data=[str(trained["shards"])], val=str(trained["shards"]), out=str(tmp_path / "run"),
                         uv_dir=str(trained["uv"]), size=96, base=4, batch_size=4, workers=0,
                         init=str(trained["checkpoint"]))
    run = set_up(config, False, lambda line: None, False)
    expected = load_trained(trained["checkpoint"]).network.state_dict()
    for name, value in run.network.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)
    fresh = set_up(config_from("tiny", **{**config.__dict__, "init": None, "out": str(tmp_path / "fresh")}), False,
                   lambda line: None, False)
    assert any(not torch.equal(value, expected[name]) for name, value in fresh.network.state_dict().items())


@pytest.mark.parametrize("change, words", [
    (["--backbone", "mobilenet"],
     "--init needs the same network, this one differs: backbone resfcn (this run: mobilenet)"),
    (["--init-missing"], "no such checkpoint"),
])
def test_init_problems_are_one_line(tmp_path, trained, change, words):
    init = tmp_path / "missing.pt" if change == ["--init-missing"] else trained["checkpoint"]
    options = [] if change == ["--init-missing"] else change
    result = CliRunner().invoke(train_cli.main, [
        "--preset", "tiny", "--data", str(trained["shards"]), "--val", str(trained["shards"]),
        "--uv-dir", str(trained["uv"]), "--out", str(tmp_path / "run"), "--batch-size", "4", "--workers", "0",
        "--max-steps", "1", "--init", str(init), *options])
    assert result.exit_code == 1 and words in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_init_of_another_model_is_refused(tmp_path, trained, small_model_dir):
    from prn.model.checkpoint import load_initial_weights
    from prn.model.network_config import make_network
    from prn.rendering.util.errors import InputError

    config = config_from("tiny", data=["-"], val="-", out="-", base=4)
    from prn.pipeline.face_match import FaceModelClaim

    with pytest.raises(InputError, match="the --init checkpoint .* and these shards are of different face models, .* "
                                         "its UV layout differs from this run's"):
        load_initial_weights(trained["checkpoint"], config, make_network(config), FaceModelClaim("these shards",
                                                                                                 "f" * 64))
