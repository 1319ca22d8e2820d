"""How many CPU threads a training process uses: no more than the cores left to it.

torch's intra-op threads busy-wait for each other at every operator. When
they outnumber the free cores (loader workers, other training processes on
the machine, or any other busy program), a descheduled thread stalls the
rest and throughput collapses (measured in docs/benchmarks.md). So each
process takes its share of the cores, less one per DataLoader worker.
"""

import os

import torch

from prn.rendering.util.cores import usable_cores


def cpu_threads(loader_workers, processes_per_machine=1, cores=None) -> int:
    """Intra-op threads of one training process: its share of the cores less its loader workers, at least 1."""
    cores = usable_cores() if cores is None else cores
    return max(1, cores // max(1, processes_per_machine) - loader_workers)


def limit_cpu_threads(loader_workers) -> int:
    """Set this process's torch threads by `cpu_threads` (torchrun's LOCAL_WORLD_SIZE processes per machine)."""
    threads = cpu_threads(loader_workers, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(threads)
    return threads
