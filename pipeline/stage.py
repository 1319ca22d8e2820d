"""What every stage shares: chunked tasks, Dask set-up, progress, rejects, resume.

A stage splits its samples into fixed chunks (the chunking depends only on the
inputs, never on the number of workers, so outputs are byte-identical however
the work is spread). Each chunk is one task: a picklable function of
(chunk, settings) that skips the samples whose outputs already exist (resume),
writes each output under a temporary name then renames it, and returns a
ChunkResult. Bad samples are reported as rejects; the run goes on and lists
them, in sample order, in `rejects.jsonl` in the output folder. One run at a
time writes an output folder (prn.pipeline.lock).

With one worker the tasks run in this process; with more, on a Dask
LocalCluster of single-threaded worker processes on 127.0.0.1, on an existing
Dask scheduler given by address, or on a batch-system cluster (SLURM, through
the optional dask-jobqueue) given by a `Cluster`. A run that was killed leaves
at most temporary files of dead writers behind; the next run removes them.
Dask's own log lines stay out of the terminal: a failed task is reported by
its exception.
"""

import functools
import json
import logging
import math
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from threadpoolctl import threadpool_limits
from tqdm import tqdm

from prn.pipeline.lock import output_lock
from prn.pipeline.tracker import guard_resource_tracker
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.util.atomic import TEMPORARY_MARK, atomic_path
from prn.rendering.util.errors import InputError
from prn.rendering.util.memory import reuse_freed_memory

REJECTS_FILE = "rejects.jsonl"
CLUSTER_KINDS = ("slurm",)
# Set in every batch job before its workers start: one BLAS / OpenMP thread per worker process.
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
# The temporary names of prn.rendering.util.atomic.atomic_path: .<name>.<pid>.<8 hex>.<TEMPORARY_MARK>.tmp
_TEMPORARY = re.compile(rf"^\..+\.(?P<pid>\d+)\.[0-9a-f]{{8}}\.{TEMPORARY_MARK}\.tmp$")
# Loggers of Dask (and the Tornado server under it), silenced while a stage runs, above CRITICAL.
DASK_LOGGERS = ("distributed", "tornado")
SILENT = logging.CRITICAL + 1


@dataclass
class ChunkResult:
    """Outcome of one task: sample names written, skipped (already done), rejected."""

    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    rejects: list = field(default_factory=list)  # dicts: {"sample": ..., "reason": ...}

    def reject(self, sample, reason):
        self.rejects.append({"sample": str(sample), "reason": str(reason)})

    def resume(self, samples, rejects):
        """A finished output skipped: its samples done before, except the rejects (dicts) it recorded."""
        rejected = {reject["sample"] for reject in rejects}
        self.skipped.extend(sample for sample in samples if str(sample) not in rejected)
        self.rejects.extend(rejects)

    def sort_rejects(self, samples):
        """Rejects in the order of `samples`, the task's inputs, whatever step rejected them."""
        position = {str(sample): index for index, sample in enumerate(samples)}
        self.rejects.sort(key=lambda reject: position[reject["sample"]])


@dataclass
class StageSummary:
    written: int
    skipped: int
    rejects: list

    def line(self, name):
        return (f"{name}: {self.written} written, {self.skipped} already done, "
                f"{len(self.rejects)} rejected")


@functools.lru_cache(maxsize=2)
def worker_morphable_model(face_model_dir):
    """A stage's morphable model, loaded once per process and kept between its tasks."""
    return load_morphable_model(face_model_dir)


def chunks(items, size):
    """Consecutive fixed-size chunks of a list (the last may be shorter)."""
    return [items[start:start + size] for start in range(0, len(items), size)]


@dataclass(frozen=True)
class Cluster:
    """A batch-system Dask cluster: `jobs` jobs, each `cores` single-threaded worker processes.

    memory is per job, as Dask writes it ("16GB"); queue (SLURM partition) and
    walltime ("HH:MM:SS") default to the dask-jobqueue configuration.
    """

    kind: str
    jobs: int
    cores: int
    memory: str
    queue: str | None = None
    walltime: str | None = None

    def __post_init__(self):
        if self.kind not in CLUSTER_KINDS:
            raise InputError(f"unknown cluster kind {self.kind!r}; expected one of {', '.join(CLUSTER_KINDS)}")
        if self.jobs < 1 or self.cores < 1:
            raise InputError(f"a cluster needs at least one job of one core, got {self.jobs} x {self.cores}")


def batch_cluster(spec: Cluster):
    """The dask-jobqueue cluster of a Cluster spec, no jobs submitted yet (the caller closes it)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise InputError(f"--cluster {spec.kind} needs dask-jobqueue: pip install 'prn-toolkit[slurm]'") from None
    return SLURMCluster(cores=spec.cores, processes=spec.cores, memory=spec.memory, queue=spec.queue,
                        walltime=spec.walltime,
                        job_script_prologue=[f"export {name}=1" for name in SINGLE_THREAD_ENV])


def job_script(spec: Cluster):
    """The batch script each job of the cluster would run (nothing is submitted)."""
    cluster = batch_cluster(spec)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


@contextmanager
def dask_client(workers, scheduler=None, tasks=None):
    """A Dask client for a stage run; prints the dashboard address on stderr.

    scheduler: None for a LocalCluster of `workers` single-threaded processes on
    127.0.0.1; an address ("tcp://host:8786") of a running scheduler; or a
    Cluster, whose jobs are submitted here (no more than `tasks` need) and
    cancelled on exit.
    """
    from dask.distributed import Client, LocalCluster

    if isinstance(scheduler, Cluster):
        with quiet_dask_logs(), batch_cluster(scheduler) as cluster, Client(cluster) as client:
            jobs = scheduler.jobs if tasks is None else min(scheduler.jobs, math.ceil(tasks / scheduler.cores))
            cluster.scale(jobs=jobs)
            print(f"dask: {jobs} {scheduler.kind} job(s) of {scheduler.cores} worker(s) submitted; "
                  f"tasks start as the workers join", file=sys.stderr)
            _print_dashboard(client)
            yield client
        return
    if scheduler:
        with quiet_dask_logs(), Client(scheduler) as client:
            _print_dashboard(client)
            yield client
        return
    guard_resource_tracker()
    with quiet_dask_logs(), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         host="127.0.0.1", dashboard_address=":0", silence_logs=SILENT,
                                         preload=[__name__]) as cluster, Client(cluster) as client:
        _print_dashboard(client)
        yield client


@contextmanager
def quiet_dask_logs():
    """Dask's loggers in this process (client, scheduler, nannies) silenced for the block.

    Heartbeats that meet a closing scheduler, workers restarted, a task's
    failure logged with its traceback: none of it is for the user, whose run
    either succeeds or stops with the failed task's exception.
    """
    loggers = [logging.getLogger(name) for name in DASK_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(SILENT)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def dask_setup(worker):
    """Preload hook of the LocalCluster's worker processes: their Dask loggers silenced from the start."""
    for name in DASK_LOGGERS:
        logging.getLogger(name).setLevel(SILENT)


def _print_dashboard(client):
    """One stderr line: where the scheduler's dashboard is, or why there is none."""
    print(f"dask dashboard: {dashboard_address(client)}", file=sys.stderr)


def dashboard_address(client):
    """The scheduler's dashboard URL, or 'not available (why)'."""
    try:
        link = client.dashboard_link
    except Exception:
        link = None
    if not link:
        return "not available (the scheduler runs without one)"
    try:
        has_bokeh = client.run_on_scheduler(_has_bokeh)
    except Exception:
        has_bokeh = True
    return link if has_bokeh else "not available (pip install bokeh)"


def _has_bokeh():
    """On the scheduler: whether its dashboard can draw (it serves only an error page without bokeh)."""
    import importlib.util
    return importlib.util.find_spec("bokeh") is not None


def run_chunks(function, tasks, settings, out_dir, workers=1, scheduler=None, description="samples",
               progress=True):
    """Run function(task, settings) -> ChunkResult over all tasks; write rejects.jsonl.

    scheduler: None (in this process when workers is 1, else a LocalCluster),
    a Dask scheduler address, or a Cluster (see dask_client). Returns a
    StageSummary. Results are merged in task order, so the rejects file does
    not depend on which worker finished first. The run holds the lock of
    out_dir (an existing folder; a caller may hold it already). Temporary files
    left in out_dir by writers that died (a killed run or worker, or this run's
    workers stopped by a failed task) are removed before and after.
    """
    with output_lock(out_dir):
        remove_stale_temporaries(out_dir)
        try:
            results = _run_all(function, tasks, settings, workers, scheduler, description, progress)
        finally:
            remove_stale_temporaries(out_dir)
        rejects = [reject for result in results for reject in result.rejects]
        write_rejects(out_dir, rejects)
    return StageSummary(written=sum(len(r.written) for r in results),
                        skipped=sum(len(r.skipped) for r in results), rejects=rejects)


def _run_all(function, tasks, settings, workers, scheduler, description, progress):
    """The ChunkResults of all tasks, in task order."""
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

            # settings go with each task (they are small): no scatter, which would need workers up front,
            # and a batch cluster's workers join whenever the queue lets them.
            with dask_client(min(workers, len(tasks)), scheduler, tasks=len(tasks)) as client:
                futures = {client.submit(run_task, function, task, settings, pure=False): index
                           for index, task in enumerate(tasks)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update(_count(results[futures[future]]))
    finally:
        bar.close()
    return results


def run_task(function, task, settings):
    """One task with BLAS on one thread: matrix products then give the same bits in every process."""
    reuse_freed_memory()
    with threadpool_limits(limits=1):
        return function(task, settings)


def _count(result):
    return len(result.written) + len(result.skipped) + len(result.rejects)


def remove_stale_temporaries(out_dir):
    """Delete the atomic-write temporaries under out_dir whose writing process is gone.

    A killed run or worker leaves `.<name>.<pid>.<hex>.prn.tmp` files; their
    final names were never written, so a rerun redoes that work. A temporary
    whose process still runs on this machine is kept (a concurrent writer),
    and a file without the mark (TEMPORARY_MARK) is not this tool's: kept.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    removed = []
    for folder, _, files in os.walk(out_dir):
        for name in files:
            match = _TEMPORARY.match(name)
            if match and not _process_alive(int(match["pid"])):
                path = Path(folder) / name
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed.append(path)
    return removed


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
