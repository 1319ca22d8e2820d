"""The console scripts: each runs its command group as a program.

Once the command has finished (its files written, its lines printed, its
exit status chosen), a Ctrl-C is ignored: Python restores the default SIGINT
action while it tears the interpreter down (torch and h5py take a moment
there), and a Ctrl-C then would end the finished program with status 130 and
no line, as if its work had been stopped.
"""

import importlib
import signal


def run_program(command):
    """Run a click command as the process's program (standalone: it ends by SystemExit)."""
    try:
        command.main()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _main(module):
    """The command group of prn-MODULE, imported only by its own program (prn-prep needs no torch)."""
    return importlib.import_module(f"prn.cli.{module}").main


def prn_prep():
    run_program(_main("prep"))


def prn_train():
    run_program(_main("train"))


def prn_eval():
    run_program(_main("eval"))


def prn_predict():
    run_program(_main("predict"))


def prn_demo():
    run_program(_main("demo"))
