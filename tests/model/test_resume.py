"""Training resumes exactly from any step: a stop by --max-steps, SIGTERM, SIGINT or kill -9, then --resume.

The losses logged after resuming are the straight run's, bit for bit (CPU).
24 training samples in batches of 8 make 3 steps an epoch, and the learning
rate halves every epoch, so a resume that skipped or repeated batches, or
stepped the schedule at a stop, would show.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import training_shards

from prn.model.checkpoint import BEST, CHECKPOINT, Position, load_for_resume, save_checkpoint
from prn.model.network_config import make_network
from prn.model.training.config import config_from
from prn.model.training.log import METRICS
from prn.model.training.train import make_optimizer, train
from prn.rendering.util.errors import InputError

SCRIPT = Path(sys.executable).parent / "prn-train"
EPOCHS = 4   # 12 steps


@pytest.fixture(scope="module")
def shards(tmp_path_factory, small_model_dir):
    return training_shards(tmp_path_factory.mktemp("resume-data"), small_model_dir)


def settings(shards, out, **options):
    """The run's settings as a --config file holds them."""
    return {"preset": "tiny", "data": [str(shards / "train")], "val": str(shards / "val"), "out": str(out),
            "uv_dir": str(shards / "uv"), "size": 64, "base": 4, "batch_size": 8, "epochs": EPOCHS,
            "lr_halve_every": 1, "workers": 0, **options}


def tiny(shards, out, **options):
    values = settings(shards, out, **options)
    return config_from(values.pop("preset"), **values)


def quiet(line):
    pass


def logged(out):
    """(step losses by step, epoch lines without samples/s) of a run folder's metrics.jsonl."""
    lines = [json.loads(line) for line in (Path(out) / METRICS).read_text().splitlines()]
    steps = {line["step"]: line["loss"] for line in lines if "val_nme" not in line}
    epochs = [{key: line[key] for key in ("epoch", "step", "loss", "val_nme")} for line in lines if "val_nme" in line]
    return steps, epochs


def weights(path):
    return torch.load(path, weights_only=True)["network"]


@pytest.fixture(scope="module")
def straight(shards, tmp_path_factory):
    """A straight run of 12 steps with 0 and with 2 loader workers: {workers: run folder}."""
    runs = {}
    for workers in (0, 2):
        out = tmp_path_factory.mktemp(f"straight-{workers}")
        train(tiny(shards, out, workers=workers), progress=quiet)
        runs[workers] = out
    return runs


def assert_same_run(out, straight_out):
    steps, epochs = logged(out)
    expected_steps, expected_epochs = logged(straight_out)
    assert sorted(steps) == list(range(1, 3 * EPOCHS + 1))
    assert steps == expected_steps      # bit for bit
    assert epochs == expected_epochs    # the epochs' mean losses and validations too
    final, expected = weights(out / CHECKPOINT), weights(straight_out / CHECKPOINT)
    assert all(torch.equal(final[name], expected[name]) for name in expected)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_stopped_within_an_epoch_resumes_as_the_straight_run(tmp_path, shards, straight, workers):
    out = tmp_path / "run"
    stopped = train(tiny(shards, out, workers=workers, max_steps=4), progress=quiet)
    # The stop is validated (best.pt), within epoch 1: 1 of its 3 batches done, the schedule not stepped.
    assert [(record["epoch"], record["step"]) for record in stopped] == [(0, 3), (1, 4)]
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert (state["epoch"], state["batches"], state["step"], len(state["batch_losses"])) == (0, 1, 4, 1)
    assert state["scheduler"]["last_epoch"] == 1 and (out / BEST).is_file()

    resumed = train(tiny(shards, out, workers=workers), resume=True, progress=quiet)
    assert [record["epoch"] for record in resumed] == [1, 2, 3]
    assert_same_run(out, straight[workers])


def test_a_finished_run_resumed_with_the_same_limit_trains_nothing(tmp_path, shards):
    out = tmp_path / "run"
    train(tiny(shards, out, max_steps=2), progress=quiet)
    before = (out / METRICS).read_text(), (out / CHECKPOINT).read_bytes()
    assert train(tiny(shards, out, max_steps=2), resume=True, progress=quiet) == []
    assert ((out / METRICS).read_text(), (out / CHECKPOINT).read_bytes()) == before


def start_run(tmp_path, shards, out, *more):
    """A `prn-train` process of the module's run, for EPOCHS * 100 epochs (it is stopped long before)."""
    (tmp_path / "run.json").write_text(json.dumps(settings(shards, out, epochs=EPOCHS * 100)))
    return subprocess.Popen([str(SCRIPT), "--config", str(tmp_path / "run.json"), *more], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_step(process, out, step):
    """Poll OUT/metrics.jsonl until it logs `step` (the process then runs on)."""
    deadline = time.monotonic() + 600  # only a guard against a hung test; no assumption on speed
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prn-train ended before step {step}: {process.stderr.read()[-2000:]}")
        path = out / METRICS
        if path.is_file() and f'"step": {step}}}' in path.read_text():  # a step line ends with its step
            return
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"no step {step} in {out / METRICS}")


@pytest.mark.parametrize("number, status", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_stop_signal_saves_the_step_and_resume_continues_as_the_straight_run(tmp_path, shards, straight,
                                                                                number, status):
    out = tmp_path / "run"
    process = start_run(tmp_path, shards, out)
    wait_for_step(process, out, 1)
    process.send_signal(number)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == status, stderr[-2000:]
    state = torch.load(out / CHECKPOINT, weights_only=True)
    step, epoch, batches = state["step"], state["epoch"] + 1, state["batches"]
    assert 1 <= step < 3 * EPOCHS and step == 3 * epoch + batches
    where = f"within epoch {epoch} ({batches} of 3 batches)" if batches else f"at the end of epoch {epoch - 1}"
    assert stdout.strip().splitlines()[-1] == (
        f"stopped by {signal.Signals(number).name} after step {step}, {where}; {out / CHECKPOINT} holds that "
        "point: rerun the same command with --resume to continue exactly from there")
    assert "Traceback" not in stderr

    train(tiny(shards, out), resume=True, progress=quiet)
    assert_same_run(out, straight[0])


def test_kill_9_after_a_periodic_checkpoint_then_resume_continues_as_the_straight_run(tmp_path, shards, straight):
    out = tmp_path / "run"
    # --max-steps 11: however late the kill comes on a loaded machine, the checkpoint is inside the 12-step run
    process = start_run(tmp_path, shards, out, "--checkpoint-every", "2", "--max-steps", str(3 * EPOCHS - 1))
    wait_for_step(process, out, 5)  # step 4's save (within epoch 1) came before step 5
    process.kill()
    process.communicate()
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert 4 <= state["step"] < 3 * EPOCHS
    steps, _ = logged(out)
    assert max(steps) >= 5  # logged past the checkpoint: the resumed run writes those steps again

    train(tiny(shards, out), resume=True, progress=quiet)
    assert_same_run(out, straight[0])


def torchrun(tmp_path, shards, out, *more):
    config = settings(shards, out, batch_size=4, epochs=2)
    (tmp_path / "ddp.json").write_text(json.dumps(config))
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(SCRIPT), "--config", str(tmp_path / "ddp.json"), *more],
                            capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_two_process_ddp_resumes_within_an_epoch_as_the_straight_run(tmp_path, shards):
    """2 processes over gloo, 12 samples each in batches of 4: 3 steps an epoch; stopped after step 4."""
    torchrun(tmp_path, shards, tmp_path / "straight")
    torchrun(tmp_path, shards, tmp_path / "split", "--max-steps", "4")
    state = torch.load(tmp_path / "split" / CHECKPOINT, weights_only=True)
    assert (state["epoch"], state["batches"], state["step"], state["processes"]) == (0, 1, 4, 2)
    torchrun(tmp_path, shards, tmp_path / "split", "--resume")
    steps, epochs = logged(tmp_path / "split")
    assert (steps, epochs) == logged(tmp_path / "straight") and sorted(steps) == list(range(1, 7))
    final, expected = weights(tmp_path / "split" / CHECKPOINT), weights(tmp_path / "straight" / CHECKPOINT)
    assert all(torch.equal(final[name], expected[name]) for name in expected)


def test_older_checkpoints_resume_at_the_next_epoch_and_a_changed_batch_size_is_refused(tmp_path, shards):
    config = tiny(shards, tmp_path)
    network = make_network(config)
    optimizer, scheduler = make_optimizer(network, config)
    save_checkpoint(tmp_path / "mid.pt", network, optimizer, scheduler, config, Position(2, 7, 0.5, 1, (0.25,)))
    assert load_for_resume(tmp_path / "mid.pt", config, network, optimizer, scheduler) == \
        Position(2, 7, 0.5, 1, (0.25,))

    state = torch.load(tmp_path / "mid.pt", weights_only=True)
    older = {key: value for key, value in state.items() if key not in ("batches", "batch_losses", "processes")}
    torch.save(older, tmp_path / "older.pt")
    assert load_for_resume(tmp_path / "older.pt", config, network, optimizer, scheduler) == Position(2, 7, 0.5)

    with pytest.raises(InputError) as error:
        load_for_resume(tmp_path / "mid.pt", tiny(shards, tmp_path, batch_size=4), network, optimizer, scheduler)
    assert str(error.value) == (f"{tmp_path / 'mid.pt'}: --resume with other settings than the run's: "
                                "--batch-size 4 (the run's: 8); resume with the run's own, or start a new --out")
    with pytest.raises(InputError) as error:
        load_for_resume(tmp_path / "mid.pt", config, network, optimizer, scheduler, processes=2)
    assert str(error.value) == (f"{tmp_path / 'mid.pt'}: the run stopped within epoch 2 after 1 batches of 8 on "
                                "1 process(es); resume it with the same --batch-size and number of processes")
    torch.save({**state, "batch_losses": []}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_for_resume(tmp_path / "bad.pt", config, network, optimizer, scheduler)


def test_fresh_processes_log_the_same_losses_bit_for_bit(tmp_path, shards):
    """The same run in four fresh processes, each with a differently sized environment (so its memory lies
    elsewhere). The loss and Adam once used MKL's vector sqrt, whose first call in a process gave one of
    several results; this run's losses then differed in about half of the processes."""
    logs = []
    for padding in range(4):
        out = tmp_path / f"run{padding}"
        (tmp_path / "run.json").write_text(json.dumps(settings(shards, out, max_steps=3)))
        environment = {**os.environ, "PRN_TEST_PADDING": "x" * (1 + 7 * padding)}
        result = subprocess.run([str(SCRIPT), "--config", str(tmp_path / "run.json")], capture_output=True,
                                text=True, env=environment, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        logs.append(logged(out)[0])
    assert sorted(logs[0]) == [1, 2, 3]
    assert all(log == logs[0] for log in logs)


def test_a_step_schedule_halves_the_rate_every_n_steps_and_resumes_within_an_epoch(tmp_path, shards):
    straight = tmp_path / "straight"
    train(tiny(shards, straight, lr_halve_steps=2, lr_halve_every=100), progress=quiet)
    lines = [json.loads(line) for line in (straight / METRICS).read_text().splitlines()]
    rates = [line["lr"] for line in lines if "val_nme" not in line]
    assert rates == [1e-3 * 0.5 ** (step // 2) for step in range(3 * EPOCHS)]

    out = tmp_path / "run"
    train(tiny(shards, out, lr_halve_steps=2, lr_halve_every=100, max_steps=5), progress=quiet)
    train(tiny(shards, out, lr_halve_steps=2, lr_halve_every=100), resume=True, progress=quiet)
    assert_same_run(out, straight)


# ---------------------------------------------------------------------------
# One run per run folder


def test_a_second_run_into_a_held_folder_stops_naming_the_holder(shards, tmp_path):
    """Another process holds the run folder (a run under way): a second run stops at once, writing nothing."""
    from prn.pipeline.lock import LOCK_FILE

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from prn.pipeline.lock import output_lock\n"
                               f"with output_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held" and (out / LOCK_FILE).exists()
        with pytest.raises(InputError, match=rf"pid {holder.pid}\b"):
            train(tiny(shards, out, max_steps=1), progress=quiet)
    finally:
        holder.kill()
        holder.wait()
    assert not (out / METRICS).exists() and not (out / CHECKPOINT).exists()


def test_a_new_run_over_a_finished_one_is_refused_unless_asked(shards, tmp_path):
    out = tmp_path / "run"
    train(tiny(shards, out, max_steps=2), progress=quiet)
    before = {name: (out / name).read_bytes() for name in (CHECKPOINT, BEST, METRICS)}
    with pytest.raises(InputError, match=r"holds a run already \(last.pt, best.pt, metrics.jsonl\); --resume it"):
        train(tiny(shards, out, max_steps=2, seed=1), progress=quiet)
    assert {name: (out / name).read_bytes() for name in before} == before
    train(tiny(shards, out, max_steps=2, seed=1), progress=quiet, overwrite=True)
    steps, _ = logged(out)
    assert sorted(steps) == [1, 2]          # replaced, not appended to
    assert (out / CHECKPOINT).read_bytes() != before[CHECKPOINT]
    with pytest.raises(InputError, match="--resume and --overwrite exclude each other"):
        train(tiny(shards, out, max_steps=3), resume=True, overwrite=True, progress=quiet)


def test_resuming_with_other_settings_names_each(shards, tmp_path):
    out = tmp_path / "run"
    train(tiny(shards, out, max_steps=2), progress=quiet)
    with pytest.raises(InputError) as error:
        train(tiny(shards, out, max_steps=4, lr=1e-4, seed=3, data=[str(shards / "train"), str(shards / "val")]),
              resume=True, progress=quiet)
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"{out / CHECKPOINT}: --resume with other settings than the run's")
    for setting in ("--data", "--lr 0.0001 (the run's: ", "--seed 3 (the run's: 0)"):
        assert setting in text, text
    train(tiny(shards, out, max_steps=4), resume=True, progress=quiet)   # more steps is not another run
    assert sorted(logged(out)[0]) == [1, 2, 3, 4]


def test_relative_folders_are_recorded_absolute_and_resume_from_the_same_folder(shards, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from prn.cli.train import main
    from prn.model.checkpoint import load_trained

    monkeypatch.chdir(shards)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(settings(Path("."), Path("run"), max_steps=1) | {"out": str(tmp_path / "run")}))
    first = CliRunner().invoke(main, ["--config", str(config)])
    assert first.exit_code == 0, first.output
    recorded = load_trained(tmp_path / "run" / CHECKPOINT)
    assert recorded.data == (str(shards / "train"),) and recorded.val == str(shards / "val")
    assert recorded.face_model.uv_dir == shards / "uv"
    again = CliRunner().invoke(main, ["--config", str(config), "--max-steps", "2", "--resume"])
    assert again.exit_code == 0, again.output
    monkeypatch.chdir(tmp_path)
    elsewhere = CliRunner().invoke(main, ["--config", str(config), "--max-steps", "3", "--resume"])
    assert elsewhere.exit_code == 1 and f"{tmp_path / 'train'}: shard folder not found" in elsewhere.output


@pytest.mark.parametrize("key, value, words", [("step", -5, "its step is -5"), ("epoch", "2", "its epoch is '2'"),
                                               ("best_nme", "x", "its best_nme is 'x'"),
                                               ("best_nme", float("nan"), "its best_nme is nan")])
def test_a_checkpoint_with_an_impossible_position_is_one_line(shards, straight, tmp_path, key, value, words):
    config = tiny(shards, straight[0])
    network = make_network(config)
    optimizer, scheduler = make_optimizer(network, config)
    state = torch.load(straight[0] / CHECKPOINT, weights_only=True)
    state[key] = value
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(InputError, match=f"bad.pt: not a readable checkpoint \\({words}"):
        load_for_resume(tmp_path / "bad.pt", config, network, optimizer, scheduler)
