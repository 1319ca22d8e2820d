"""Python's resource tracker, relaunched after it died, without a traceback per semaphore.

The worker processes of a LocalCluster are spawned with named semaphores,
which multiprocessing's resource tracker (a helper process) unlinks should
their owner die. When the tracker itself is killed (SIGKILL or the system's
out-of-memory killer; it ignores SIGINT and SIGTERM), Python launches a new
one at the next message with a warning, and each later "unregister" of a
semaphore registered with the old tracker makes the new one print a KeyError
traceback (a CPython defect). The semaphores are unlinked all the same by
their owner; only the messages to a tracker that never knew them are left out
here, and the relaunch is silent: the stage goes on as before.
"""

import warnings
from multiprocessing import resource_tracker

_RELAUNCHED = "resource_tracker: process died unexpectedly"
_installed = False


def guard_resource_tracker():
    """Install the guard in this process (once; later calls do nothing)."""
    global _installed
    if _installed:
        return
    _installed = True
    tracker = resource_tracker._resource_tracker
    register, unregister = tracker.register, tracker.unregister
    registered_with = {}   # (name, rtype): the tracker process it was registered with

    def register_here(name, rtype):
        _running(tracker)
        register(name, rtype)
        registered_with[name, rtype] = tracker._pid

    def unregister_here(name, rtype):
        _running(tracker)
        if registered_with.pop((name, rtype), tracker._pid) == tracker._pid:
            unregister(name, rtype)

    resource_tracker.register, resource_tracker.unregister = register_here, unregister_here


def _running(tracker):
    """The tracker process running, relaunched without a warning if it died."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_RELAUNCHED)
        tracker.ensure_running()
