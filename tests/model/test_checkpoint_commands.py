"""Damaged checkpoints through the commands that read them: prn-eval, prn-predict and prn-train --resume."""

import json

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
    ("size", "not a readable checkpoint (its config: size: must be a multiple of 32 >= 32, got -5)"),
])
def test_a_damaged_checkpoint_is_one_line_in_every_command(tmp_path, trained, kind, words):
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
                                            "--workers", "0"])
    the_error(result, bad, words)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    assert [path.name for path in (tmp_path / "run").iterdir()] == [CHECKPOINT]

