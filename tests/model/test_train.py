import json
import os
import shutil
import signal

import pytest
import torch
from conftest import training_shards

from prn.model.checkpoint import BEST, CHECKPOINT
from prn.model.data import ShardDataset
from prn.model.training import threads as threads_module
from prn.model.training import train as train_module
from prn.model.training.config import config_from
from prn.model.training.log import METRICS
from prn.model.training.train import train
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.rendering.util.errors import HelperDied


@pytest.fixture(scope="module")
def shards(tmp_path_factory, small_model_dir):
    return training_shards(tmp_path_factory.mktemp("train-data"), small_model_dir)


def tiny(shards, out, **options):
    values = {"data": [shards / "train"], "val": str(shards / "val"), "out": str(out), "uv_dir": str(shards / "uv"),
                  "size": 64, "base": 4, "batch_size": 8, "epochs": 2, "workers": 0}
    values.update(options)
    return config_from("tiny", **values)


def test_tiny_training_logs_checkpoints_and_resumes_identically(tmp_path, shards):
    history = train(tiny(shards, tmp_path / "straight"), progress=lambda line: None)
    assert len(history) == 2 and all(record["val_nme"] > 0 for record in history)
    lines = [json.loads(line) for line in (tmp_path / "straight" / METRICS).read_text().splitlines()]
    assert {"step", "epoch", "loss", "lr", "samples_per_s"} <= set(lines[0])
    assert any("val_nme" in line for line in lines)
    assert {line["val_reading"] for line in lines if "val_nme" in line} == {"map, 1 view"}   # named in the log
    state = torch.load(tmp_path / "straight" / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1 and json.loads(state["config"])["base"] == 4
    assert (tmp_path / "straight" / BEST).is_file()

    train(tiny(shards, tmp_path / "halves", epochs=1), progress=lambda line: None)
    resumed = train(tiny(shards, tmp_path / "halves"), resume=True, progress=lambda line: None)
    assert len(resumed) == 1
    assert resumed[0]["loss"] == pytest.approx(history[1]["loss"], rel=1e-5)
    assert resumed[0]["val_nme"] == pytest.approx(history[1]["val_nme"], rel=1e-5)


def killed_in_a_worker(self, index):
    """A loader worker's sample read that ends its process as the system's out-of-memory killer would."""
    if torch.utils.data.get_worker_info() is not None:
        os.kill(os.getpid(), signal.SIGKILL)
    return ORIGINAL_ITEM(self, index)


ORIGINAL_ITEM = ShardDataset.__getitem__


def test_a_killed_loader_worker_is_one_line_naming_the_last_good_checkpoint(tmp_path, shards, monkeypatch):
    out = tmp_path / "run"
    train(tiny(shards, out, epochs=1), progress=lambda line: None)
    monkeypatch.setattr(ShardDataset, "__getitem__", killed_in_a_worker)
    with pytest.raises(HelperDied) as stop:
        train(tiny(shards, out, epochs=2, workers=2), resume=True, progress=lambda line: None)
    line = str(stop.value)
    assert line.startswith("a data loader process died (pid ") and "killed by SIGKILL" in line, line
    assert line.endswith(f"fewer --workers need less; the last good checkpoint is {out / CHECKPOINT}")
    assert "\n" not in line


def nan_loss(*args):
    return torch.tensor(float("nan"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, shards, monkeypatch):
    out = tmp_path / "run"
    train(tiny(shards, out, epochs=1), progress=lambda line: None)
    before = (out / CHECKPOINT).read_bytes()
    monkeypatch.setattr(train_module, "weighted_loss", nan_loss)
    with pytest.raises(FloatingPointError, match=f"the last good checkpoint is {out / CHECKPOINT}"):
        train(tiny(shards, out, epochs=2), resume=True, progress=lambda line: None)
    assert (out / CHECKPOINT).read_bytes() == before


def test_nan_loss_before_any_checkpoint_says_there_is_none(tmp_path, shards, monkeypatch):
    monkeypatch.setattr(train_module, "weighted_loss", nan_loss)
    with pytest.raises(FloatingPointError, match="no checkpoint was saved yet"):
        train(tiny(shards, tmp_path / "run", epochs=1), progress=lambda line: None)
    assert not (tmp_path / "run" / CHECKPOINT).exists()


def test_weights_turned_nan_are_never_saved_as_the_last_checkpoint(tmp_path, shards, monkeypatch):
    out = tmp_path / "run"
    train(tiny(shards, out, epochs=1), progress=lambda line: None)
    before = (out / CHECKPOINT).read_bytes()
    original = train_module.train_step

    def poisoning(run, batch):
        loss = original(run, batch)
        with torch.no_grad():
            next(run.network.parameters()).fill_(float("inf"))
        return loss

    monkeypatch.setattr(train_module, "train_step", poisoning)
    with pytest.raises(FloatingPointError, match="weights turned NaN or inf .*the last good checkpoint is"):
        train(tiny(shards, out, epochs=2, checkpoint_every=1), resume=True, progress=lambda line: None)
    assert (out / CHECKPOINT).read_bytes() == before


def test_more_workers_than_cores_is_noted_once(tmp_path, shards, monkeypatch):
    monkeypatch.setattr(train_module, "usable_cores", lambda: 1)
    lines = []
    train(tiny(shards, tmp_path / "run", epochs=2, workers=2), progress=lines.append)
    assert [line for line in lines if "usable cores" in line] == [
        "note: --workers 2 loader processes on 1 usable cores; more workers than cores rarely load faster"]


def test_training_leaves_the_thread_count_as_it_found_it(tmp_path, shards, monkeypatch):
    """What runs after training in the same process (prn-demo's prediction) computes as in a fresh process."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads_module, "usable_cores", lambda: before + 2)   # training takes one more thread
    seen = []
    original = train_module.train_epochs
    monkeypatch.setattr(train_module, "train_epochs",
                        lambda *args: seen.append(torch.get_num_threads()) or original(*args))
    train(tiny(shards, tmp_path / "run", epochs=1, workers=1), progress=lambda line: None)
    assert seen == [before + 1] and torch.get_num_threads() == before


def test_prn_train_command_with_a_config_file(tmp_path, shards):
    from click.testing import CliRunner

    from prn.cli.train import main

    config = {"preset": "tiny", "data": [str(shards / "train")], "val": str(shards / "val"),
              "uv_dir": str(shards / "uv"), "size": 64, "epochs": 1, "batch_size": 8}
    (tmp_path / "run.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "run.json"), "--out", str(tmp_path / "out"),
                                       "--max-steps", "2", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "val NME" in result.output
    assert "parameters" in result.output and "GFLOPs per image" in result.output
    assert (tmp_path / "out" / CHECKPOINT).is_file()
    missing = CliRunner().invoke(main, ["--out", str(tmp_path / "o2")])
    assert missing.exit_code != 0 and "--data is required" in missing.output
    help_text = CliRunner().invoke(main, ["--help"]).output
    for option in ("--data", "--val", "--out", "--preset", "--backbone", "--weights", "--loss", "--epochs",
                   "--batch-size", "--lr", "--max-steps", "--seed", "--resume", "--config"):
        assert option in help_text


def test_two_process_ddp_on_cpu_with_gloo(tmp_path, shards):
    """torchrun starts 2 processes; DDP over gloo; rank 0 logs and saves."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    config = {"preset": "tiny", "data": [str(shards / "train")], "val": str(shards / "val"),
              "uv_dir": str(shards / "uv"), "size": 64, "epochs": 1, "batch_size": 4, "workers": 0}
    (tmp_path / "run.json").write_text(json.dumps(config))
    script = Path(sys.executable).parent / "prn-train"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script), "--config", str(tmp_path / "run.json"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in (tmp_path / "out" / METRICS).read_text().splitlines()]
    steps = [line for line in lines if "val_nme" not in line]
    # 24 samples, 2 processes of batch 4: 3 steps, 8 samples each
    assert len(steps) == 3 and steps[-1]["step"] == 3
    assert (tmp_path / "out" / CHECKPOINT).is_file()
    state = torch.load(tmp_path / "out" / CHECKPOINT, weights_only=True)
    assert not any(key.startswith("module.") for key in state["network"])


def test_ablation_command_trains_each_weighting_and_writes_the_table(tmp_path, shards):
    from click.testing import CliRunner

    from prn.cli.train import main

    arguments = ["ablation", "--preset", "tiny", "--data", str(shards / "train"), "--val", str(shards / "val"),
                 "--uv-dir", str(shards / "uv"), "--out", str(tmp_path / "abl"), "--epochs", "1",
                 "--batch-size", "8", "--workers", "0", "--max-steps", "2", "--only", "weight1", "--only", "weight3",
                 "--test", str(shards / "val")]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert [row["weights"] for row in rows] == ["weight1", "weight3"]
    assert [row["ratio"] for row in rows] == ["1:1:1:0", "10:3:2:0"]
    assert all(row["epochs"] == 1 and 0 < row["best_val_nme"] < 1000 for row in rows)
    # Scored by prn-eval on the test shards; here the test set is the validation set, so "all" is close to the
    # best validation NME (training reads a 64 px map at rounded landmark pixels, prn-eval the map resized to 256).
    assert all(row["test_nme2d_bbox_all"] == pytest.approx(row["best_val_nme"], rel=0.02) for row in rows)
    assert (tmp_path / "abl" / "weight1" / "eval" / "report.json").is_file()
    losses = [json.loads((tmp_path / "abl" / w / METRICS).read_text().splitlines()[0])["loss"]
              for w in ("weight1", "weight3")]
    assert losses[0] != losses[1]  # same data and seed, different weighting
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert "weight1" in table and "10:3:2:0" in table and table in result.output
    # A rerun continues (nothing left to train) and rebuilds the same table.
    again = CliRunner().invoke(main, arguments)
    assert again.exit_code == 0 and (tmp_path / "abl" / "ablation.md").read_text() == table


def test_tensorboard_logs_when_installed(tmp_path, shards):
    pytest.importorskip("tensorboard")
    train(tiny(shards, tmp_path / "run", epochs=1, max_steps=2), progress=lambda line: None)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_compile_on_the_cpu_is_skipped_with_a_message(tmp_path, shards):
    lines = []
    train(tiny(shards, tmp_path / "run", epochs=1, max_steps=1, compile=True), progress=lines.append)
    assert any("--compile: skipped on the CPU" in line for line in lines)


def test_bad_shard_folders_are_one_clear_line(tmp_path, shards):
    from click.testing import CliRunner

    from prn.cli.train import main

    def run(data, val=shards / "val"):
        return CliRunner().invoke(main, ["--preset", "tiny", "--data", str(data), "--val", str(val),
                                         "--uv-dir", str(shards / "uv"), "--out", str(tmp_path / "out"),
                                         "--epochs", "1", "--max-steps", "1", "--workers", "0"])

    (tmp_path / "empty").mkdir()
    result = run(tmp_path / "empty")
    assert result.exit_code == 1 and "empty" in result.output and "Traceback" not in result.output
    result = run(tmp_path / "missing")
    assert result.exit_code != 0 and "missing" in result.output

    mismatched = tmp_path / "mismatched"
    shutil.copytree(shards / "val", mismatched)
    manifest = json.loads((mismatched / "manifest.json").read_text())
    manifest["model_fingerprint"] = "0" * 64
    (mismatched / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["--preset", "tiny", "--data", str(shards / "train"), "--data", str(mismatched),
                                       "--val", str(shards / "val"), "--uv-dir", str(shards / "uv"),
                                       "--out", str(tmp_path / "out"), "--max-steps", "1", "--workers", "0"])
    assert result.exit_code == 1 and "are of different face models, " in result.output

    corrupt = tmp_path / "corrupt"
    shutil.copytree(shards / "train", corrupt)
    for path in corrupt.glob("shard-*.h5"):
        path.write_bytes(path.read_bytes()[:4096])
    result = run(corrupt)
    assert result.exit_code == 1 and "cannot read shard" in result.output and "Traceback" not in result.output


def test_time_budget_ends_the_run_after_a_validated_epoch(tmp_path, shards):
    # A budget of 60 ns: over after the first step on any machine, however loaded.
    history = train(tiny(shards, tmp_path / "run", epochs=50, max_minutes=1e-9), progress=lambda line: None)
    assert len(history) == 1 and history[0]["step"] == 1
    assert torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)["step"] == 1


def invoke_train(*arguments):
    from click.testing import CliRunner

    from prn.cli.train import main

    return CliRunner().invoke(main, [str(argument) for argument in arguments])


def quick(shards, out, *more, data=None, val=None):
    """prn-train arguments of a 1-step tiny run (no --uv-dir unless in `more`)."""
    return ["--preset", "tiny", "--data", data or shards / "train", "--val", val or shards / "val", "--out", out,
            "--epochs", "1", "--max-steps", "1", "--batch-size", "8", "--workers", "0", *more]


def one_error_line(result, *fragments):
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert str(fragment) in lines[0], lines[0]
    return lines[0]


def shard_model(folder):
    return json.loads((folder / "manifest.json").read_text())["model_fingerprint"]


def test_uv_assets_of_another_model_are_refused_and_none_is_needed_for_the_builtin_model(tmp_path, shards):
    from prn.uv_data import builtin_uv_dir

    ours, builtin = shard_model(shards / "train"), load_uv_assets(builtin_uv_dir()).face_model_fingerprint
    assert ours != builtin
    out = tmp_path / "out"
    one_error_line(invoke_train(*quick(shards, out)), "--uv-dir is needed", ours[:12], builtin[:12],
                   shards / "train")
    one_error_line(invoke_train(*quick(shards, out, "--uv-dir", builtin_uv_dir())), builtin_uv_dir(),
                   shards / "train", ours[:12], builtin[:12])
    assert not out.exists()

    # Shards of the built-in model train with its assets by default (the manifest says which model they are).
    for name in ("train", "val"):
        shutil.copytree(shards / name, tmp_path / name)
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        (tmp_path / name / "manifest.json").write_text(json.dumps({**manifest, "model_fingerprint": builtin}))
    result = invoke_train(*quick(tmp_path, out))
    assert result.exit_code == 0, result.output
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert state["model_fingerprint"] == builtin
    assert json.loads(state["config"])["uv_dir"] == str(builtin_uv_dir())

    # Validation shards of another model than the training shards'.
    one_error_line(invoke_train(*quick(shards, tmp_path / "o2", "--uv-dir", shards / "uv", val=tmp_path / "val")),
                   tmp_path / "val", shards / "train", ours[:12], builtin[:12])


def test_uv_assets_that_record_no_model_are_taken_on_trust_with_a_note(tmp_path, shards):
    legacy = tmp_path / "legacy-uv"
    shutil.copytree(shards / "uv", legacy)
    (legacy / "model.json").unlink()
    out = tmp_path / "out"
    result = invoke_train(*quick(shards, out, "--uv-dir", legacy))
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "record no face model" in line]
    assert notes == [f"{legacy}: the UV assets record no face model (no model.json); taken on trust to be of face "
                     f"model {shard_model(shards / 'train')[:12]}"]
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert state["model_fingerprint"] == shard_model(shards / "train")
    assert json.loads(state["config"])["uv_dir"] == str(legacy)


def test_uv_assets_at_the_recorded_face_models_default_place_need_no_uv_dir(tmp_path, shards, small_model_dir):
    """`prn-prep uv-data --model M` writes M/uv256: shards that record M train without --uv-dir."""
    model = tmp_path / "model"
    shutil.copytree(small_model_dir, model)
    shutil.copytree(shards / "uv", model / "uv256")
    for name in ("train", "val"):
        shutil.copytree(shards / name, tmp_path / name)
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        manifest["settings"]["model_dir"] = str(model)
        (tmp_path / name / "manifest.json").write_text(json.dumps(manifest))
    result = invoke_train(*quick(tmp_path, tmp_path / "out"))
    assert result.exit_code == 0, result.output
    state = torch.load(tmp_path / "out" / CHECKPOINT, weights_only=True)
    assert json.loads(state["config"])["uv_dir"] == str(model / "uv256")


def test_bad_learning_rates_and_seeds_are_usage_errors(tmp_path, shards):
    for option, value, words in (("--lr", "-1", "must be a finite number > 0, got -1.0"),
                                 ("--lr", "nan", "must be a finite number > 0, got nan"),
                                 ("--lr", "0", "must be a finite number > 0, got 0.0"),
                                 ("--seed", "-1", "must be an integer >= 0"),
                                 ("--epochs", "0", "must be an integer >= 1, got 0"),
                                 ("--max-minutes", "inf", "must be a finite number >= 0"),
                                 ("--detector-framing", "1.5", "must be a finite number >= 0 and <= 1, got 1.5"),
                                 ("--detector-framing", "-0.1", "must be a finite number >= 0 and <= 1"),
                                 ("--detector-framing", "nan", "must be a finite number >= 0 and <= 1")):
        result = invoke_train(*quick(shards, tmp_path / "out", "--uv-dir", shards / "uv", option, value))
        assert result.exit_code == 2, (option, value, result.output)
        assert f"Invalid value for '{option}': {words}" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("settings, words", [
    ({"batch_size": 0}, "batch_size: must be an integer >= 1, got 0"),
    ({"epochs": "abc"}, "epochs: must be an integer >= 1, got 'abc'"),
    ({"epochs": -3}, "epochs: must be an integer >= 1, got -3"),
    ({"lr": float("nan")}, "lr: must be a finite number > 0, got nan"),
    ({"size": -5}, "size: must be a multiple of 32 >= 32, got -5"),
    ({"augment": "yes"}, "augment: must be true or false, got 'yes'"),
    ({"data": 3}, "data: must be a list of folders, got 3"),
    ({"preset": "huge"}, "preset: must be one of paper, tiny, small, got 'huge'"),
    ({"epoch": 3}, "unknown setting 'epoch'"),
])
def test_a_config_file_is_checked_like_the_options(tmp_path, shards, settings, words):
    config = {"preset": "tiny", "data": [str(shards / "train")], "val": str(shards / "val"),
              "uv_dir": str(shards / "uv"), "size": 64, "epochs": 1, "batch_size": 8, **settings}
    (tmp_path / "run.json").write_text(json.dumps(config))
    result = invoke_train("--config", tmp_path / "run.json", "--out", tmp_path / "out", "--max-steps", "1",
                          "--workers", "0")
    one_error_line(result, f"{tmp_path / 'run.json'}: {words}")
    assert not (tmp_path / "out").exists()


def test_resume_without_a_checkpoint_stops_with_one_line(tmp_path, shards):
    out = tmp_path / "typo"
    one_error_line(invoke_train(*quick(shards, out, "--uv-dir", shards / "uv", "--resume")),
                   f"{out}: nothing to resume (no last.pt there); leave out --resume to start a new run")
    assert not out.exists()
    out.mkdir()
    one_error_line(invoke_train(*quick(shards, out, "--uv-dir", shards / "uv", "--resume")), "nothing to resume")


def test_a_damaged_shard_read_by_workers_is_one_line(tmp_path, shards):
    damaged = tmp_path / "damaged"
    shutil.copytree(shards / "train", damaged)
    victim = sorted(damaged.glob("shard-*.h5"))[-1]
    victim.write_bytes(victim.read_bytes()[:4096])
    result = invoke_train(*quick(shards, tmp_path / "out", "--uv-dir", shards / "uv", "--workers", "2",
                                 "--max-steps", "0", data=damaged))
    error = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 1 and error == [line for line in result.output.splitlines() if "network:" not in line]
    assert error[0].startswith(f"Error: {victim}: cannot read shard (") and "Traceback" not in result.output


def test_failed_runs_leave_no_output_folder(tmp_path, shards):
    out = tmp_path / "deep" / "out"
    for arguments in (quick(shards, out, "--uv-dir", shards / "uv", data=tmp_path / "missing"),
                      quick(shards, out, "--uv-dir", tmp_path / "no-uv"),
                      quick(shards, out, "--uv-dir", shards / "uv", val=tmp_path / "missing")):
        result = invoke_train(*arguments)
        assert result.exit_code == 1, result.output
        assert not out.exists() and not out.parent.exists(), result.output


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a tmpfs of that many bytes at tmp_path/tmpfs; skips where mounting is not allowed."""
    import subprocess

    mounted = []

    def mount(size):
        target = tmp_path / "tmpfs"
        target.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:  # lazily: a failed run's traceback may still hold a file open there
        subprocess.run(["umount", "--lazy", str(target)], check=True)


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(tmp_path, shards, tmpfs):
    out = tmp_path / "run"
    arguments = ["--preset", "tiny", "--data", shards / "train", "--val", shards / "val", "--uv-dir", shards / "uv",
                 "--batch-size", "8", "--workers", "0", "--max-steps", "1"]
    assert invoke_train(*arguments, "--epochs", "1", "--out", out).exit_code == 0
    used = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    disk = tmpfs(used + 2 ** 20)  # room for the first epoch's files and the log, not for another checkpoint
    shutil.copytree(out, disk / "run")
    before = {name: (disk / "run" / name).read_bytes() for name in (CHECKPOINT, BEST)}
    result = invoke_train(*arguments, "--epochs", "2", "--max-steps", "2", "--out", disk / "run", "--resume")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert line == result.output.strip().splitlines()[-1], result.output
    assert line.split(": ")[1] in (str(disk / "run" / CHECKPOINT), str(disk / "run" / BEST)), line
    assert "cannot write the checkpoint" in line and "is the disk full?" in line
    assert {name: (disk / "run" / name).read_bytes() for name in before} == before
    assert not list((disk / "run").glob(".*.tmp"))
