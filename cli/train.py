"""`prn-train`: train the PRN on shards."""

import json
from pathlib import Path

import click

from prn.model.loss import LOSSES
from prn.model.train import PRESETS, config_from, train
from prn.rendering.errors import InputError
from prn.rendering.uv_assets import WEIGHT_PRESETS
from prn.uv_data import builtin_uv_dir

from .common import Command


@click.command(cls=Command)
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path, file_okay=False),
              help="Training shard folder (repeat for several, e.g. build + augment).")
@click.option("--val", type=click.Path(path_type=Path, file_okay=False), help="Validation shard folder.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Run folder: checkpoints, metrics.")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON file with any of these options (command-line options win).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="paper: the paper's network and schedule; tiny: narrow, 128 px, for CPUs. Default paper.")
@click.option("--backbone", type=click.Choice(["resfcn", "mobilenet"]), default=None, help="Encoder.")
@click.option("--weights", type=click.Choice(sorted(WEIGHT_PRESETS)), default=None,
              help="UV weight mask preset (Table 1 of the paper, or prnet 16:4:3:0). Default weight3.")
@click.option("--loss", type=click.Choice(LOSSES), default=None, help="Per-pixel error. Default euclidean.")
@click.option("--uv-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="UV assets of the shards' model (uv_kpt_ind.txt, weight masks). Default: the built-in model's.")
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--lr", type=float, default=None, help="Initial learning rate (halved on the preset's schedule).")
@click.option("--max-steps", type=click.IntRange(min=0), default=None, help="Stop after this many steps (0: no limit).")
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader worker processes.")
@click.option("--seed", type=int, default=None)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
def main(data, val, out, config_file, preset, resume, **options):
    """Train the PRN on position-map shards; validation NME each epoch."""
    settings = {}
    if config_file:
        try:
            settings = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"{config_file}: not a readable JSON config ({error})") from None
    given = {"data": list(data) or None, "val": val, "out": out, **options}
    settings.update({key: value for key, value in given.items() if value is not None})
    settings.setdefault("uv_dir", builtin_uv_dir())
    for required in ("data", "val", "out"):
        if not settings.get(required):
            raise InputError(f"--{required} is required (on the command line or in --config)")
    settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in settings.items()}
    config = config_from(preset or settings.pop("preset", "paper"), **settings)
    train(config, resume=resume, progress=click.echo)
