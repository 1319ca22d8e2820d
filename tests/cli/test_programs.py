"""The console scripts: a Ctrl-C that comes once a command has finished leaves its exit status alone."""

import os
import signal
import subprocess
import sys

import pytest

# A finished command whose process receives SIGINT while Python tears it down, as a Ctrl-C just after the last
# line: Python's finalisation puts back the default action of the SIGINT handler it installed (a handler set by
# the program, such as SIG_IGN, stays), which this script does itself before the signal comes, so that the case
# does not hang on the order in which the interpreter's teardown runs.
LATE_CTRL_C = """
import os, signal
import click
from prn.cli.common import Command
from prn.cli.programs import run_program

# As started from a terminal: a process that inherits SIGINT ignored (a background job of a script, as CI may
# run the tests) would otherwise ignore it in both cases.
signal.signal(signal.SIGINT, signal.default_int_handler)

@click.command(cls=Command)
def finished():
    click.echo("all written")

try:
    run_program(finished) if os.environ["ENTRY"] == "program" else finished()
finally:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
"""


@pytest.mark.parametrize("entry, status", [("program", 0), ("bare click", -signal.SIGINT)])
def test_a_ctrl_c_after_the_command_finished_keeps_its_exit_status(entry, status):
    result = subprocess.run([sys.executable, "-c", LATE_CTRL_C], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "ENTRY": entry})
    assert result.stdout == "all written\n" and result.stderr == ""
    assert result.returncode == status   # the bare click command shows the fault: killed by SIGINT, no line


def test_every_script_is_a_program():
    from importlib.metadata import entry_points
    scripts = {point.name: point.value for point in entry_points(group="console_scripts")
               if point.name.startswith("prn-")}
    assert scripts == {f"prn-{name}": f"prn.cli.programs:prn_{name}"
                       for name in ("prep", "train", "eval", "predict", "demo")}
