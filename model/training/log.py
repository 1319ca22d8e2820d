"""Rank 0's record of a training run: OUT/metrics.jsonl, a progress bar per epoch, TensorBoard when installed."""

import json
from pathlib import Path

from tqdm import tqdm

from prn.rendering.util.atomic import atomic_path

METRICS = "metrics.jsonl"


class RunLog:
    """One JSON line per step and one per epoch in OUT/metrics.jsonl, mirrored to tqdm and TensorBoard.

    Step lines: step, epoch, loss, lr, samples_per_s. Epoch lines: epoch,
    step, loss (the epoch's mean), val_nme (a fraction), samples_per_s.
    """

    def __init__(self, out, show_steps=False):
        self.out = Path(out)
        self.path = self.out / METRICS
        self.show_steps = show_steps
        self.board = None    # opened with the first record, which makes OUT
        self.started = False
        self.bar = None

    def truncate(self, step, epoch):
        """Keep what precedes a checkpoint taken at `step` within (or before) `epoch`: the resumed run writes the rest.

        Dropped: the lines after `step`, the epoch lines of `epoch` and later
        (a validation at a stop within it: the epoch's own line comes at its
        end), and a line cut short by a killed process.
        """
        if self.path.is_file():
            kept = []
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record["step"] <= step and ("val_nme" not in record or record["epoch"] < epoch):
                    kept.append(line)
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept))

    def start_epoch(self, epoch, batches, done=0):
        """An epoch of `batches` batches (per process), of which `done` were trained before a resume."""
        self.bar = tqdm(total=batches, initial=done, desc=f"epoch {epoch}", unit="batch", leave=False,
                        disable=not self.show_steps)

    def step(self, step, epoch, loss, lr, rate):
        """One optimizer step: its loss, learning rate and the epoch's samples/s so far (all processes)."""
        self._write({"step": step, "epoch": epoch, "loss": loss, "lr": lr, "samples_per_s": round(rate, 1)})
        self.bar.set_postfix_str(f"loss {loss:.5f}, {rate:.1f} samples/s", refresh=False)
        self.bar.update()
        if self.board is not None:
            self.board.add_scalar("train/loss", loss, step)
            self.board.add_scalar("train/samples_per_s", rate, step)

    def end_steps(self):
        self.bar.close()

    def epoch(self, record, lr):
        """An epoch line (see the class doc) and the learning rate for the next epoch."""
        self._write(record)
        if self.board is not None:
            self.board.add_scalar("val/nme", record["val_nme"], record["step"])
            self.board.add_scalar("train/lr", lr, record["step"])
            self.board.flush()

    def close(self):
        if self.board is not None:
            self.board.close()

    def _write(self, record):
        if not self.started:
            self.out.mkdir(parents=True, exist_ok=True)
            self.board = open_tensorboard(self.out)
            self.started = True
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def open_tensorboard(out):
    """A SummaryWriter on OUT/tensorboard when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(Path(out) / "tensorboard"))
