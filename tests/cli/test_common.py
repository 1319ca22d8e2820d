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
