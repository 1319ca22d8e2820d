"""What every stage shares: chunked tasks, Dask set-up, progress, rejects, resume.

A stage splits its samples into fixed chunks (the chunking depends only on the
inputs, never on the number of workers, so outputs are byte-identical however
the work is spread). Each chunk is one task: a picklable function of
(chunk, settings) that skips the samples whose outputs already exist (resume),
writes each output under a temporary name then renames it, and returns a
ChunkResult. Bad samples are reported as rejects; the run goes on and lists
them, in sample order, in `rejects.jsonl` in the output folder.

With one worker the tasks run in this process; with more, on a Dask
LocalCluster of single-threaded worker processes on 127.0.0.1, or on an
existing Dask scheduler given by address.
"""

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from threadpoolctl import threadpool_limits
from tqdm import tqdm

from prn.rendering.atomic import atomic_path

REJECTS_FILE = "rejects.jsonl"


@dataclass
class ChunkResult:
    """Outcome of one task: sample names written, skipped (already done), rejected."""

    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    rejects: list = field(default_factory=list)  # dicts: {"sample": ..., "reason": ...}

    def reject(self, sample, reason):
        self.rejects.append({"sample": str(sample), "reason": str(reason)})


@dataclass
class StageSummary:
    written: int
    skipped: int
    rejects: list

    def line(self, name):
        return (f"{name}: {self.written} written, {self.skipped} already done, "
                f"{len(self.rejects)} rejected")


def chunks(items, size):
    """Consecutive fixed-size chunks of a list (the last may be shorter)."""
    return [items[start:start + size] for start in range(0, len(items), size)]


def default_workers():
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@contextmanager
def dask_client(workers, scheduler=None):
    """A Dask client: an existing scheduler's, or a local cluster of `workers` processes."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def run_chunks(function, tasks, settings, out_dir, workers=1, scheduler=None, description="samples",
               progress=True):
    """Run function(task, settings) -> ChunkResult over all tasks; write rejects.jsonl.

    Returns a StageSummary. Results are merged in task order, so the rejects
    file does not depend on which worker finished first.
    """
    results = [None] * len(tasks)
    total = sum(len(task) if hasattr(task, "__len__") else 1 for task in tasks)
    bar = tqdm(total=total, desc=description, unit="sample", disable=None if progress else True, leave=False)
    try:
        if scheduler is None and min(workers, len(tasks)) <= 1:
            for index, task in enumerate(tasks):
                results[index] = run_task(function, task, settings)
                bar.update(_count(results[index]))
        else:
            from dask.distributed import as_completed

            with dask_client(min(workers, len(tasks)), scheduler) as client:
                settings_future = client.scatter(settings, broadcast=True)
                futures = {client.submit(run_task, function, task, settings_future, pure=False): index
                           for index, task in enumerate(tasks)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update(_count(results[futures[future]]))
    finally:
        bar.close()
    rejects = [reject for result in results for reject in result.rejects]
    write_rejects(out_dir, rejects)
    return StageSummary(written=sum(len(r.written) for r in results),
                        skipped=sum(len(r.skipped) for r in results), rejects=rejects)


def run_task(function, task, settings):
    """One task with BLAS on one thread: matrix products then give the same bits in every process."""
    with threadpool_limits(limits=1):
        return function(task, settings)


def _count(result):
    return len(result.written) + len(result.skipped) + len(result.rejects)


def write_rejects(out_dir, rejects):
    """rejects.jsonl: one JSON object per rejected sample, in sample order."""
    path = Path(out_dir) / REJECTS_FILE
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(reject, sort_keys=True) + "\n" for reject in rejects))


def read_rejects(out_dir):
    path = Path(out_dir) / REJECTS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
