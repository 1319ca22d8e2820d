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


def _program(module):
    """The entry of prn-MODULE; the module is imported only by its own program (prn-prep needs no torch)."""
    def run():
        run_program(importlib.import_module(f"prn.cli.{module}").main)
    run.__name__ = run.__qualname__ = f"prn_{module}"
    return run


prn_prep = _program("prep")
prn_train = _program("train")
prn_eval = _program("eval")
prn_predict = _program("predict")
prn_demo = _program("demo")
