"""Stopping a run on SIGTERM (a batch system's notice before its walltime kill) or SIGINT (Ctrl-C).

While a run trains, either signal only raises a flag: the run finishes the
step under way, saves OUT/last.pt with its position within the epoch and
ends with `Interrupted`, which the command turns into one line and an exit
status. A second SIGINT interrupts at once.
"""

import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """While entered (in the main thread), SIGTERM and SIGINT set `received` (the first one's number) and return."""

    def __init__(self):
        self.received = 0
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._catch) for number in STOP_SIGNALS}
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _catch(self, number, frame):
        self.received = self.received or number
        if number == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)


class Interrupted(Exception):
    """A run stopped by a signal after saving its position; str() is the one line saying where.

    lead: whether this is the process that prints it (rank 0).
    exit_status: 0 for SIGTERM (the batch system asked the job to end and it
    did, resumable), 128 + the signal's number otherwise (130 for SIGINT, as
    shells report Ctrl-C).
    """

    def __init__(self, message, number, lead=True):
        super().__init__(message)
        self.number = number
        self.lead = lead

    @property
    def exit_status(self) -> int:
        return 0 if self.number == signal.SIGTERM else 128 + self.number
