"""Training the PRN from shards: presets, the loop, validation NME, checkpoints and resume.

One process trains on the CPU or one GPU (bf16 autocast, channels_last);
torchrun starts one process per GPU or CPU slot (DDP over NCCL or gloo, a
distributed sampler; rank 0 evaluates, logs and saves). A checkpoint holds the model, optimizer,
scheduler and RNG states and the full config, saved atomically each epoch; the
best one by validation NME is kept too. Checkpoints load with
`torch.load(weights_only=True)`.
"""

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from prn.model.data import ShardDataset, make_loader
from prn.model.loss import LOSSES, weighted_loss
from prn.model.network import PRNet, count_parameters, flops_per_image
from prn.model.training.validation import landmarks_from_posmap, nme_2d
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError

CHECKPOINT = "last.pt"
BEST = "best.pt"
METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    data: tuple
    val: str
    out: str
    uv_dir: str
    backbone: str = "resfcn"
    base: int = 16
    kernel: int = 3
    size: int = 256
    weights: str = "weight3"
    loss: str = "euclidean"
    epochs: int = 50
    batch_size: int = 16
    lr: float = 2e-4
    lr_halve_every: int = 5
    beta2: float = 0.999
    max_steps: int = 0
    seed: int = 0
    workers: int = 0
    augment: bool = True
    compile: bool = False
    max_minutes: float = 0.0


PRESETS = {
    # The paper: Adam, lr 2e-4 halved every 5 epochs, beta2 0.999, 50 epochs, batch 16.
    "paper": {"backbone": "resfcn", "base": 16, "kernel": 3, "size": 256, "epochs": 50, "batch_size": 16, "lr": 2e-4,
                  "lr_halve_every": 5},
    # A narrower network at half resolution that learns within minutes on a CPU.
    "tiny": {"backbone": "resfcn", "base": 4, "kernel": 3, "size": 128, "epochs": 20, "batch_size": 16, "lr": 1e-3,
                 "lr_halve_every": 8},
}


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))  # noqa: NPY002 (seeds third-party code that draws from the legacy global RNG)


def make_network(config: TrainConfig):
    return PRNet(base=config.base, kernel=config.kernel, backbone=config.backbone, input_size=config.size)


def make_optimizer(model, config: TrainConfig):
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, config.beta2))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_halve_every, gamma=0.5)
    return optimizer, scheduler


def save_checkpoint(path, model, optimizer, scheduler, config, epoch, step, best_nme):
    """Everything needed to resume, written atomically; loadable with weights_only=True."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "config": json.dumps(asdict(config), sort_keys=True),
        "epoch": epoch,
        "step": step,
        "best_nme": best_nme,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, model, optimizer=None, scheduler=None):
    """Restore a checkpoint into the objects; InputError when it is unreadable or from another network."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for bad files
        raise InputError(f"{path}: not a readable checkpoint ({str(error).splitlines()[0]})") from None
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as error:
        raise InputError(f"{path}: the checkpoint is for another network ({str(error).splitlines()[0][:200]})") \
            from None
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
    return state


def evaluate(model, loader, kpt_uv, device):
    """Mean 2D NME (bbox-normalised) of the 68 landmarks read from the predicted position maps."""
    model.eval()
    errors = []
    with torch.no_grad():
        for batch in loader:
            prediction = model(batch["image"].to(device))
            predicted = landmarks_from_posmap(prediction, kpt_uv)
            truth = landmarks_from_posmap(batch["target"].to(device), kpt_uv)
            errors.append(nme_2d(predicted, truth).cpu())
    model.train()
    return float(torch.cat(errors).mean())


def train(config: TrainConfig, resume=False, progress=print, show_steps=False):
    """Train; returns the list of per-epoch records (epoch, loss, val_nme).

    progress: called with one line per epoch. show_steps: a tqdm bar per
    epoch with the loss and samples/s (for terminals).
    """
    if config.loss not in LOSSES:
        raise InputError(f"unknown loss '{config.loss}'")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    rank, world, device = start_processes()
    lead = rank == 0
    seed_everything(config.seed)
    train_set = ShardDataset(config.data, size=config.size, augment=config.augment, seed=config.seed)
    val_set = ShardDataset([config.val], size=config.size, augment=False, seed=config.seed)
    uv = load_uv_assets(config.uv_dir)
    weights = torch.from_numpy(uv.weight_mask(config.weights, config.size)).to(device)
    kpt_uv = torch.from_numpy(uv.keypoints(config.size)).to(device)
    network = make_network(config).to(device)
    if device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    if lead:
        progress(f"network: {config.backbone}, base {config.base}, {config.kernel}x{config.kernel} kernels, "
                 f"{config.size} px: {count_parameters(network):,} parameters, "
                 f"{flops_per_image(network) / 1e9:.2f} GFLOPs per image")
    optimizer, scheduler = make_optimizer(network, config)
    start_epoch, step, best = 0, 0, math.inf
    if resume and (out / CHECKPOINT).is_file():
        state = load_checkpoint(out / CHECKPOINT, network, optimizer, scheduler)
        saved = json.loads(state["config"])
        if saved["backbone"] != config.backbone or saved["base"] != config.base:
            raise InputError(f"{out / CHECKPOINT}: the run was made with another network; start a new --out")
        start_epoch, step, best = state["epoch"] + 1, state["step"], state["best_nme"]
        if lead:
            _truncate_log(out, step)
    model = network
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(network, device_ids=[device.index] if device.index is not None
                                                          else None)
    if config.compile and device.type == "cuda":
        model = torch.compile(model)
    elif config.compile and lead:
        # Measured with torch 2.13 (CPU build): inductor aborts the process
        # ("double free or corruption") compiling this network's backward pass.
        progress("--compile: skipped on the CPU (torch's inductor crashes on this network's backward pass "
                 "there); it applies on GPUs")
    board = open_tensorboard(out) if lead else None
    val_loader = make_loader(val_set, config.batch_size, shuffle=False, workers=config.workers, seed=config.seed,
                             epoch=0)
    history = []
    deadline = time.monotonic() + 60 * config.max_minutes if config.max_minutes else math.inf
    for epoch in range(start_epoch, config.epochs):
        train_set.set_epoch(epoch)
        loader = make_loader(train_set, config.batch_size, shuffle=True, workers=config.workers,
                             seed=config.seed, epoch=epoch, distributed=world > 1)
        # The step's randomness depends on (seed, epoch) only, so a resumed run repeats it.
        torch.manual_seed(config.seed * 1000 + epoch)
        losses, seen, started = [], 0, time.perf_counter()
        bar = tqdm(total=len(loader), desc=f"epoch {epoch}", unit="batch", leave=False,
                   disable=not (lead and show_steps))
        for batch in loader:
            image, target = batch["image"].to(device), batch["target"].to(device)
            if device.type == "cuda":
                image = image.to(memory_format=torch.channels_last)
            # bf16 autocast on GPUs; the loss itself in float32
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                prediction = model(image)
            loss = weighted_loss(prediction.float(), target, weights, config.loss)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}; the last good checkpoint is "
                                         f"{out / CHECKPOINT}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            seen += len(image) * world
            losses.append(loss.item())
            rate = seen / max(time.perf_counter() - started, 1e-9)
            if lead:
                _log(out, {"step": step, "epoch": epoch, "loss": losses[-1], "lr": optimizer.param_groups[0]["lr"],
                           "samples_per_s": round(rate, 1)})
                bar.set_postfix_str(f"loss {losses[-1]:.5f}, {rate:.1f} samples/s", refresh=False)
                bar.update()
                if board is not None:
                    board.add_scalar("train/loss", losses[-1], step)
                    board.add_scalar("train/samples_per_s", rate, step)
            if (config.max_steps and step >= config.max_steps) or out_of_time(deadline, world, device):
                break
        bar.close()
        scheduler.step()
        if lead:  # the other processes wait at the barrier below
            val_nme = evaluate(network, val_loader, kpt_uv, device)
            record = {"epoch": epoch, "step": step, "loss": float(np.mean(losses)) if losses else math.nan,
                      "val_nme": val_nme, "samples_per_s": round(rate if losses else 0.0, 1)}
            _log(out, record)
            history.append(record)
            if board is not None:
                board.add_scalar("val/nme", val_nme, step)
                board.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
                board.flush()
            progress(f"epoch {epoch}: loss {record['loss']:.5f}, val NME {100 * val_nme:.2f} %, "
                     f"{record['samples_per_s']} samples/s")
            if val_nme < best:
                best = val_nme
                save_checkpoint(out / BEST, network, optimizer, scheduler, config, epoch, step, best)
            save_checkpoint(out / CHECKPOINT, network, optimizer, scheduler, config, epoch, step, best)
        if world > 1:
            torch.distributed.barrier()
        if (config.max_steps and step >= config.max_steps) or out_of_time(deadline, world, device):
            break
    if board is not None:
        board.close()
    if world > 1:
        torch.distributed.destroy_process_group()
    return history


def out_of_time(deadline, world, device):
    """Whether the time budget is spent; under DDP all processes stop at the same step (rank 0's clock)."""
    if deadline == math.inf:
        return False
    spent = torch.tensor([float(time.monotonic() > deadline)], device=device)
    if world > 1:
        torch.distributed.broadcast(spent, src=0)
    return bool(spent.item())


def open_tensorboard(out):
    """A SummaryWriter on OUT/tensorboard when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(Path(out) / "tensorboard"))


def start_processes():
    """(rank, world size, device): one process, or one per GPU / CPU slot under torchrun (DDP)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return rank, world, device


def _truncate_log(out, step):
    """Drop the log lines after a checkpoint's step: the resumed run writes them again."""
    path = Path(out) / METRICS
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))


def _log(out, record):
    with open(Path(out) / METRICS, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def config_from(preset, **options):
    """A TrainConfig from a preset and explicit options (None means: the preset's value)."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset '{preset}', expected one of {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **{k: v for k, v in options.items() if v is not None}}
    values["data"] = tuple(str(d) for d in values["data"])
    return TrainConfig(**{k: v for k, v in values.items() if k in TrainConfig.__dataclass_fields__})

