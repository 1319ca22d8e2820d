"""Training the PRN from shards: the set-up, one epoch, validation and checkpoints, and `train` composing them.

One process trains on the CPU or one GPU (bf16 autocast, channels_last);
torchrun starts one per GPU or CPU slot (distributed.py; rank 0 validates,
logs and saves). OUT gets last.pt each epoch and best.pt by validation NME
(model/checkpoint.py) and metrics.jsonl (log.py). last.pt is also written
within epochs: every checkpoint_every steps or checkpoint_minutes, when
max_steps or max_minutes stop the run, and on SIGTERM or SIGINT (stopping.py).
It holds the position within the epoch: the sample order and augmentation
depend on (seed, epoch) only and torch's RNG state is saved, so a run
resumed from any step repeats a straight one.
"""

import contextlib
import math
import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from prn.model.checkpoint import BEST, CHECKPOINT, Position, load_for_resume, load_initial_weights, save_checkpoint
from prn.model.data import ShardDataset, make_loader
from prn.model.loss import LOSSES, weighted_loss
from prn.model.network import count_parameters, flops_per_image
from prn.model.network_config import make_network
from prn.model.training.config import TrainConfig
from prn.model.training.distributed import Processes, start_processes
from prn.model.training.log import METRICS, RunLog
from prn.model.training.stopping import Interrupted, StopSignals
from prn.model.training.threads import limit_cpu_threads
from prn.model.training.validation import READING as VALIDATION_READING
from prn.model.training.validation import validation_nme
from prn.pipeline.face_match import FaceModelClaim, Resolved, resolve
from prn.pipeline.lock import output_lock
from prn.rendering.util.cores import usable_cores
from prn.rendering.util.errors import HelperDied, InputError, helper_death_line


@dataclass
class Run:
    """A run in progress: what set_up builds, and the step and best validation NME the epochs advance."""

    config: TrainConfig
    out: Path
    processes: Processes
    network: torch.nn.Module     # the PRNet: validated and saved
    wrapped: torch.nn.Module     # the network as trained: under DDP and/or torch.compile, or itself
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_set: ShardDataset
    val_loader: torch.utils.data.DataLoader
    weights: torch.Tensor        # (size, size) UV weight mask
    kpt_uv: torch.Tensor         # (2, 68) landmark (column, row) in the size x size map
    log: RunLog | None           # rank 0's only
    start: Position              # where training starts: the beginning, or the checkpoint resumed
    step: int
    best: float
    deadline: float              # time.monotonic() at which the time budget is spent; inf without one
    face_model_fingerprint: str | None  # of the UV assets and shards, recorded in the checkpoints
    signals: StopSignals
    next_save: float = math.inf  # time.monotonic() of the next timed save of last.pt (checkpoint_minutes)


RUN_FILES = (CHECKPOINT, BEST, METRICS)   # what a run leaves in OUT, that a new one would replace or mix with
END = -1   # a stop code: max_steps or the time budget reached; > 0: a stop signal's number; 0: go on


def train(config: TrainConfig, resume=False, progress=print, show_steps=False, overwrite=False):
    """Train; returns the list of validation records (epoch, step, loss, val_nme, samples_per_s).

    resume: continue the run in OUT/last.pt from the step it holds (InputError
    when there is none). overwrite: start a new run in an OUT that holds one,
    replacing its files (else InputError). progress: called with one line
    per validation. show_steps: a tqdm bar per epoch with the loss and
    samples/s (for terminals). Interrupted after a SIGTERM or SIGINT, once
    last.pt holds the step reached. One run at a time per OUT: the lead
    process holds OUT's lock (InputError naming the holder otherwise).
    torch's thread count, set for training (threads.py), is as before on return.
    """
    out = Path(config.out)
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other: continue the run, or replace it")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: not a folder (--out)")
    made = [folder for folder in (out, *out.parents) if not folder.exists()]
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    try:
        try:
            with contextlib.ExitStack() as held:
                if int(os.environ.get("RANK", "0")) == 0:
                    held.enter_context(output_lock(out))
                return _train(config, resume, progress, show_steps, overwrite)
        finally:
            # What runs next in this process (prn-demo's prediction) computes as it would in a fresh one.
            torch.set_num_threads(threads)
            for folder in made:   # a run that could not start leaves no folder
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
    except RuntimeError as error:
        line = helper_death_line(error)
        if line is None:
            raise
        raise HelperDied(f"{line}; {last_good(out)}") from None


def _train(config, resume, progress, show_steps, overwrite):
    if not resume:
        earlier = [name for name in RUN_FILES if (Path(config.out) / name).exists()]
        if earlier and not overwrite:
            raise InputError(f"{config.out}: holds a run already ({', '.join(earlier)}); --resume it, choose a new "
                             "--out, or pass --overwrite to replace it")
    run = set_up(config, resume, progress, show_steps)
    if not resume:
        for name in RUN_FILES:
            (run.out / name).unlink(missing_ok=True)
    history = []
    try:
        with run.signals:
            stopped = train_epochs(run, history, progress)
    finally:
        if run.log is not None:
            run.log.close()  # also after a failure: TensorBoard's writer holds a file in OUT
    run.processes.finish()
    if stopped is not None:
        raise stopped
    return history


def train_epochs(run: Run, history, progress) -> Interrupted | None:
    """The epochs from run.start on, until the last, max_steps, the time budget or a stop signal (returned)."""
    config, processes, start = run.config, run.processes, run.start
    if not work_left(config, start):
        return None
    for epoch in range(start.epoch, config.epochs):
        losses, batches, rate, code = train_epoch(run, epoch, list(start.losses) if epoch == start.epoch else [])
        if code > 0:
            return interrupt(run, code, Position(epoch, run.step, run.best, len(losses), tuple(losses)), batches)
        complete = len(losses) == batches
        if complete and not config.lr_halve_steps:
            run.scheduler.step()
        if processes.lead:  # the other processes wait at the barrier below
            record = validate(run, epoch, losses, rate)
            where = "" if complete else f" (stopped after {len(losses)} of {batches} batches)"
            progress(f"epoch {epoch}{where}: loss {record['loss']:.5f}, val NME {100 * record['val_nme']:.2f} % "
                     f"({VALIDATION_READING}), "
                     f"{record['samples_per_s']} samples/s")
            improved = record["val_nme"] < run.best
            run.best = min(run.best, record["val_nme"])
            position = Position(epoch + 1, run.step, run.best) if complete else \
                Position(epoch, run.step, run.best, len(losses), tuple(losses))
            if improved:
                save_checkpoint(run.out / BEST, run.network, run.optimizer, run.scheduler, run.config, position,
                                run.face_model_fingerprint, processes.world)
            save_last(run, position)
            history.append(record)
        processes.barrier()
        code = code or processes.agreed(run.signals.received)
        if code > 0:
            return interrupt(run, code, Position(epoch + 1, run.step, run.best), batches)
        if code:
            break
    return None


def work_left(config: TrainConfig, start: Position) -> bool:
    """Whether a run at `start` has steps left to train (a resumed run may have reached its end)."""
    return start.epoch < config.epochs and not (config.max_steps and start.step >= config.max_steps)


def interrupt(run: Run, number, position: Position, batches) -> Interrupted:
    """Save last.pt at `position` (rank 0) when a stop signal arrived; the Interrupted saying where."""
    if run.processes.lead and position.batches:
        save_last(run, position)  # an epoch's end has just been saved
    run.processes.barrier()
    where = f"within epoch {position.epoch} ({position.batches} of {batches} batches)" if position.batches else \
        f"at the end of epoch {position.epoch - 1}"
    return Interrupted(f"stopped by {signal.Signals(number).name} after step {position.step}, {where}; "
                       f"{run.out / CHECKPOINT} holds that point", number, run.processes.lead)


def set_up(config: TrainConfig, resume, progress, show_steps) -> Run:
    """Processes, data, UV assets, network, optimizer, and the state of OUT/last.pt when resuming.

    Every input is checked before anything is written: a run that cannot
    start leaves no OUT folder behind (RunLog makes it with the first record).
    """
    if config.loss not in LOSSES:
        raise InputError(f"unknown loss '{config.loss}'")
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: not a folder (--out)")
    if resume and not (out / CHECKPOINT).is_file():
        raise InputError(f"{out}: nothing to resume (no {CHECKPOINT} there); leave out --resume to start a new run "
                         "in this folder")
    processes = start_processes()
    device = processes.device
    if device.type == "cpu":
        limit_cpu_threads(config.workers)
    if config.workers > usable_cores() and processes.lead:
        progress(f"note: --workers {config.workers} loader processes on {usable_cores()} usable cores; "
                 "more workers than cores rarely load faster")
    seed_everything(config.seed)
    train_set = ShardDataset(config.data, size=config.size, augment=config.augment, seed=config.seed,
                             detector_framing=config.detector_framing)
    val_set = ShardDataset([config.val], size=config.size, augment=False, seed=config.seed)
    chosen = training_uv(config, train_set, val_set)
    if chosen.note and processes.lead:
        progress(chosen.note)
    config = replace(config, uv_dir=os.path.abspath(chosen.uv.folder))  # recorded in the checkpoints
    weights = torch.from_numpy(chosen.uv.weight_mask(config.weights, config.size)).to(device)
    kpt_uv = torch.from_numpy(chosen.uv.keypoints(config.size)).to(device)
    network = make_network(config).to(device)
    # channels_last on the CPU too: oneDNN's convolutions at few channels run several times faster in it
    network = network.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(network, config)
    start = Position(0, 0, math.inf)
    if config.init and not resume:
        load_initial_weights(config.init, config, network, run_face_model(config, chosen))
    if resume:
        start = load_for_resume(out / CHECKPOINT, config, network, optimizer, scheduler, run_face_model(config, chosen),
                                processes.world)
    if processes.lead:
        progress(f"network: {config.backbone}, base {config.base}, {config.kernel}x{config.kernel} kernels, "
                 f"{config.size} px: {count_parameters(network):,} parameters, "
                 f"{flops_per_image(network) / 1e9:.2f} GFLOPs per image")
    wrapped = compiled(processes.wrap(network), config, processes, progress)
    log = RunLog(out, show_steps) if processes.lead else None
    if log is not None and resume and work_left(config, start):
        log.truncate(start.step, start.epoch)
    val_loader = make_loader(val_set, config.batch_size, shuffle=False, workers=config.workers, seed=config.seed,
                             epoch=0)
    deadline = time.monotonic() + 60 * config.max_minutes if config.max_minutes else math.inf
    run = Run(config, out, processes, network, wrapped, optimizer, scheduler, train_set, val_loader, weights,
              kpt_uv, log, start, start.step, start.best_nme, deadline, chosen.fingerprint, StopSignals())
    schedule_save(run)
    return run


def training_uv(config: TrainConfig, train_set: ShardDataset, val_set: ShardDataset) -> Resolved:
    """The run's UV assets (config.uv_dir, else found by the resolver), of the training and validation shards'
    face model."""
    return resolve([train_set.face_model, val_set.face_model], uv=True, given_uv=config.uv_dir,
                   uv_size=train_set.uv_size)


def run_face_model(config: TrainConfig, chosen: Resolved) -> FaceModelClaim:
    """What this run says of its face model, as a checkpoint it resumes or starts from must match."""
    return FaceModelClaim(f"this run's shards {config.data[0]} and UV assets {chosen.uv.folder}", chosen.fingerprint)


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))  # noqa: NPY002 (seeds third-party code that draws from the legacy global RNG)


def make_optimizer(network, config: TrainConfig):
    """Adam (lr, beta2 of the config) and a StepLR halving the rate every lr_halve_every epochs (stepped at
    epoch ends) or, when lr_halve_steps > 0, every lr_halve_steps steps (stepped after each step).

    The fused Adam: one kernel per step, and on the CPU its square roots are
    torch's own, not MKL's vector math (see model/loss.py).
    """
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr, betas=(0.9, config.beta2), fused=True)
    step_size = config.lr_halve_steps or config.lr_halve_every
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.5)
    return optimizer, scheduler


def compiled(wrapped, config: TrainConfig, processes: Processes, progress):
    """torch.compile(wrapped) on GPUs when config.compile; on the CPU it stays as it is (with a message)."""
    if config.compile and processes.device.type == "cuda":
        return torch.compile(wrapped)
    if config.compile and processes.lead:
        # Measured with torch 2.13 (CPU build): inductor aborts the process
        # ("double free or corruption") compiling this network's backward pass.
        progress("--compile: skipped on the CPU (torch's inductor crashes on this network's backward pass "
                 "there); it applies on GPUs")
    return wrapped


def train_epoch(run: Run, epoch, losses) -> tuple[list, int, float, int]:
    """The batches of `epoch` after the len(losses) already trained (a resumed epoch), until its end or a stop.

    Returns (the epoch's step losses, its batch count, samples/s of all
    processes, the stop code: 0, END or a stop signal's number).
    """
    config, processes = run.config, run.processes
    done = len(losses)
    loader = make_loader(run.train_set, config.batch_size, shuffle=True, workers=config.workers, seed=config.seed,
                         epoch=epoch, distributed=processes.world > 1, skip_batches=done)
    batches = done + len(loader)
    if not done:
        # An epoch's randomness depends on (seed, epoch) only; one resumed within has the checkpoint's RNG state.
        torch.manual_seed(config.seed * 1000 + epoch)
    seen, rate, started, code = 0, 0.0, time.perf_counter(), 0
    if run.log is not None:
        run.log.start_epoch(epoch, batches, done)
    for batch in loader:
        losses.append(train_step(run, batch))
        seen += len(batch["image"]) * processes.world
        rate = seen / max(time.perf_counter() - started, 1e-9)
        if run.log is not None:
            run.log.step(run.step, epoch, losses[-1], run.optimizer.param_groups[0]["lr"], rate)
        if config.lr_halve_steps:
            run.scheduler.step()
        code = stop_code(run)
        if code:
            break
        if len(losses) < batches and processes.lead and save_due(run):
            save_last(run, Position(epoch, run.step, run.best, len(losses), tuple(losses)))
    if run.log is not None:
        run.log.end_steps()
    return losses, batches, rate, code


def train_step(run: Run, batch) -> float:
    """Forward (bf16 autocast on GPUs), the loss in float32, backward, optimizer step; the loss."""
    device = run.processes.device
    image, target = batch["image"].to(device), batch["target"].to(device)
    image = image.to(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        prediction = run.wrapped(image)
    loss = weighted_loss(prediction.float(), target, run.weights, run.config.loss)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()} at step {run.step}; {last_good(run.out)}")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.step += 1
    return loss.item()


def validate(run: Run, epoch, losses, rate) -> dict:
    """The epoch's record with its validation NME, written to the log (rank 0)."""
    record = {"epoch": epoch, "step": run.step, "loss": float(np.mean(losses)) if losses else math.nan,
              "val_nme": validation_nme(run.network, run.val_loader, run.kpt_uv, run.processes.device),
              "val_reading": VALIDATION_READING, "samples_per_s": round(rate, 1)}
    run.log.epoch(record, run.optimizer.param_groups[0]["lr"])
    return record


def save_last(run: Run, position: Position):
    """OUT/last.pt at `position`, where the run stands now (rank 0); the next timed save counts from now.

    FloatingPointError, last.pt left as it was, when a weight has turned NaN or inf.
    """
    if not all(torch.isfinite(tensor).all() for tensor in run.network.state_dict().values()
               if tensor.is_floating_point()):
        raise FloatingPointError(f"the network's weights turned NaN or inf by step {run.step}; {last_good(run.out)}")
    save_checkpoint(run.out / CHECKPOINT, run.network, run.optimizer, run.scheduler, run.config, position,
                    run.face_model_fingerprint, run.processes.world)
    schedule_save(run)


def last_good(out: Path) -> str:
    """Where the run in `out` can resume from: its last.pt, whose weights were finite when saved, or none yet."""
    path = out / CHECKPOINT
    if path.is_file():
        return f"the last good checkpoint is {path}"
    return f"no checkpoint was saved yet in {out}"


def schedule_save(run: Run):
    run.next_save = time.monotonic() + 60 * run.config.checkpoint_minutes if run.config.checkpoint_minutes \
        else math.inf


def save_due(run: Run) -> bool:
    """Whether a periodic save of last.pt is due after this step: checkpoint_every steps, checkpoint_minutes."""
    every = run.config.checkpoint_every
    return bool(every and run.step % every == 0) or time.monotonic() >= run.next_save


def stop_code(run: Run) -> int:
    """After a step: a stop signal's number, END at max_steps or past the deadline, else 0 (rank 0's, for all)."""
    code = run.signals.received
    if not code and ((run.config.max_steps and run.step >= run.config.max_steps) or time.monotonic() > run.deadline):
        code = END
    return run.processes.agreed(code)
