"""What every command shares: faults reach the user as one line, never a traceback."""

import errno

import pytest
from click.testing import CliRunner

import prn.cli.train as train_cli


@pytest.mark.parametrize("fault, line", [
    (FloatingPointError("loss is nan at step 3; the last good checkpoint is run/last.pt"),
     "Error: loss is nan at step 3; the last good checkpoint is run/last.pt"),
    (OSError(errno.ENOSPC, "No space left on device", "run/metrics.jsonl"),
     "Error: run/metrics.jsonl: No space left on device"),
    (RuntimeError("DataLoader worker (pid 12) is killed by signal: Killed. "),
     "Error: a data loader process died: DataLoader worker (pid 12) is killed by signal: Killed; a killed loader is "
     "often the system short of memory: fewer --workers need less"),
])
def test_a_fault_is_one_line(tmp_path, monkeypatch, fault, line):
    def failing(*args, **kwargs):
        raise fault

    monkeypatch.setattr(train_cli, "train", failing)
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(train_cli.main, ["--data", str(tmp_path / "data"), "--val", str(tmp_path / "data"),
                                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.output.strip() == line


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch):
    import prn.cli.predict as predict_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict_cli, "predict_images", interrupted)
    (tmp_path / "photo.png").write_bytes(b"")
    result = CliRunner().invoke(predict_cli.main, [str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"),
                                                   "--bbox", "0,0,10,10"])
    assert result.exit_code == 130
    (line,) = result.output.strip().splitlines()
    assert line.endswith(": interrupted (Ctrl-C)") and "Aborted" not in line
