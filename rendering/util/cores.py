"""How many CPU cores this process may use."""

import os


def usable_cores() -> int:
    """The number of cores this process may run on (its CPU affinity), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
