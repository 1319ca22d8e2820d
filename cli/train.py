"""`prn-train`: train the PRN on shards; `prn-train ablation`: the paper's weighting ablation."""

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from prn.cli.common import Command, DefaultGroup, recorded_face_model_dir, recorded_model_option
from prn.model.checkpoint import SHIPPED_NAME
from prn.model.evaluation.evaluate import run_evaluation
from prn.model.evaluation.real_photos import RealPhotoRun, evaluate_real_photos, photo_folder
from prn.model.loss import LOSSES
from prn.model.network import BACKBONES
from prn.model.training.ablation import ABLATION_PRESETS, real_photo_columns, run_ablation, test_columns
from prn.model.training.config import PRESETS, SETTINGS, config_from, file_settings
from prn.model.training.stopping import Interrupted
from prn.model.training.train import train
from prn.pipeline.face_match import FaceModelClaim, absolute
from prn.rendering.morphable.uv_assets import WEIGHT_PRESETS
from prn.rendering.util.errors import InputError, first_line
from prn.rendering.util.memory import reuse_freed_memory

FOLDER = click.Path(path_type=Path, file_okay=False)


class SettingType(click.ParamType):
    """A training setting on the command line, checked by its rule in prn.model.training.config.SETTINGS."""

    def __init__(self, field):
        self.field = field
        self.name = "integer" if SETTINGS[field].kind is int else "float"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return SETTINGS[self.field].parse(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


TRAINING_OPTIONS = [
    click.option("--data", "data", multiple=True, type=FOLDER,
                 help="Training shard folder (repeat for several, e.g. build + augment)."),
    click.option("--val", type=FOLDER, help="Validation shard folder."),
    click.option("--out", type=FOLDER, help="Run folder: checkpoints, metrics."),
    click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
                 help="JSON file with any of these options (command-line options win)."),
    click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                 help="paper: the paper's network and schedule; tiny: narrow, 96 px, for CPUs. Default paper."),
    click.option("--backbone", type=click.Choice(BACKBONES), default=None, help="Encoder."),
    click.option("--loss", type=click.Choice(LOSSES), default=None, help="Per-pixel error. Default euclidean."),
    click.option("--uv-dir", type=FOLDER, default=None,
                 help="UV assets of the shards' model (uv_kpt_ind.txt, weight masks; `prn-prep uv-data`). "
                      "Default: the built-in model's, when the shards are of that model."),
    click.option("--epochs", type=SettingType("epochs"), default=None),
    click.option("--batch-size", type=SettingType("batch_size"), default=None),
    click.option("--lr", type=SettingType("lr"), default=None,
                 help="Initial learning rate (halved on the preset's schedule)."),
    click.option("--lr-halve-steps", type=SettingType("lr_halve_steps"), default=None,
                 help="Halve the learning rate every N steps instead of the preset's every-so-many epochs "
                      "(0: the preset's schedule)."),
    click.option("--max-steps", type=SettingType("max_steps"), default=None,
                 help="Stop after this many steps (0: no limit)."),
    click.option("--max-minutes", type=SettingType("max_minutes"), default=None,
                 help="Time budget: the step during which it runs out is the last (validated and saved; "
                      "--resume continues from there)."),
    click.option("--checkpoint-every", type=SettingType("checkpoint_every"), default=None,
                 help="Also save last.pt every N steps within epochs (0: at epoch ends only)."),
    click.option("--checkpoint-minutes", type=SettingType("checkpoint_minutes"), default=None,
                 help="Also save last.pt every M minutes within epochs (0: not by time)."),
    click.option("--workers", type=SettingType("workers"), default=None, help="DataLoader worker processes."),
    click.option("--init", type=click.Path(path_type=Path, dir_okay=False), default=None,
                 help="Start from this checkpoint's weights (the same backbone, base and kernel; any input size), "
                      "with a fresh optimizer and schedule; 'shipped': the shipped network (--preset small)."),
    click.option("--seed", type=SettingType("seed"), default=None),
    click.option("--detector-framing", type=SettingType("detector_framing"), default=None,
                 help="Probability (0-1) of framing a training crop as prn-predict frames a box of the 68 "
                      "landmarks (1.58 times it, centre 0.14 of it lower) instead of the build's framing "
                      "(1.5 times it, centred). Default 0."),
    click.option("--compile/--no-compile", "compile", default=None,
                 help="torch.compile the network (worth it on GPUs for long runs; the first steps compile)."),
]


def training_options(function):
    for option in reversed(TRAINING_OPTIONS):
        function = option(function)
    return function


def read_config(config_file, preset, data, **options):
    """A TrainConfig from --config JSON and the command line (the command line wins).

    The file's settings are checked as the options are (InputError naming the
    file and the setting); a key that is no setting is an error.
    """
    settings = {}
    if config_file:
        try:
            settings = json.loads(config_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"{config_file}: not a readable JSON config ({first_line(error)})") from None
        settings = file_settings(settings, config_file)
    given = {"data": list(data) or None, **options}
    settings.update({key: value for key, value in given.items() if value is not None})
    for required in ("data", "val", "out"):
        if not settings.get(required):
            raise InputError(f"--{required} is required (on the command line or in --config)")
    settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in settings.items()}
    return config_from(preset or settings.pop("preset", "paper"), **absolute_folders(settings))


def absolute_folders(settings) -> dict:
    """The settings with their folders and --init absolute, so that the run records where its data is, not
    where it was from the folder it was started in (relative paths in a --config file: from the working folder)."""
    def absolute_path(value):
        return str(absolute(value)) if isinstance(value, str) else value
    moved = dict(settings)
    for key in ("val", "out", "uv_dir"):
        if moved.get(key) is not None:
            moved[key] = absolute_path(moved[key])
    if isinstance(moved.get("data"), (list, tuple)):
        moved["data"] = [absolute_path(folder) for folder in moved["data"]]
    if moved.get("init") not in (None, SHIPPED_NAME):
        moved["init"] = absolute_path(moved["init"])
    return moved



@click.group(cls=DefaultGroup)
def main():
    """Train the PRN (`prn-train --data ...`) or run the weighting ablation (`prn-train ablation ...`)."""
    reuse_freed_memory()  # torch's large temporaries: recycled instead of page-faulted afresh


@main.command("run", cls=Command, epilog="The paper's weighting ablation: prn-train ablation --help")
@training_options
@click.option("--weights", type=click.Choice(sorted(WEIGHT_PRESETS)), default=None,
              help="UV weight mask preset (Table 1 of the paper, or prnet 16:4:3:0). Default weight3.")
@click.option("--resume", is_flag=True, help="Continue the run in OUT (its last.pt).")
@click.option("--overwrite", is_flag=True, help="Start a new run in an OUT that holds one, replacing its files.")
def run(resume, overwrite, **options):
    """Train the PRN on position-map shards; validation NME each epoch.

    SIGTERM (a batch system's walltime notice) or SIGINT: the step under way
    ends, last.pt keeps that point, and --resume continues exactly there.
    """
    with stopped_by_signal("rerun the same command with --resume to continue exactly from there"):
        train(read_config(**options), resume=resume, progress=click.echo, show_steps=sys.stderr.isatty(),
              overwrite=overwrite)


@main.command("ablation", cls=Command)
@training_options
@click.option("--only", "presets", multiple=True, type=click.Choice(ABLATION_PRESETS),
              help="Train only these weightings (repeatable). Default: all four.")
@click.option("--test", type=FOLDER, default=None,
              help="Test shards (e.g. AFLW2000-3D): score each best checkpoint there as prn-eval does, into "
                   "OUT/<weights>/eval/.")
@click.option("--real", "real_photos", type=FOLDER, default=None,
              help="Real AFLW2000-3D photos (as `prn-eval real --aflw`): also score each best checkpoint on "
                   "them, with the mean face beside it, into OUT/<weights>/real/.")
@recorded_model_option
def ablation(presets, test, real_photos, face_model_dir, **options):
    """Train the same data with weight1, weight2, weight3 and prnet into OUT/<weights>, then write
    OUT/ablation.md and OUT/ablation.json. Rerunning continues unfinished runs. --model: the model the
    --real photos' parameters were fitted with."""
    config = read_config(**options)
    if real_photos is not None:
        real_photos = photo_folder(real_photos)
        face_model_dir = recorded_face_model_dir(face_model_dir, FaceModelClaim(str(real_photos), None))

    def evaluate(checkpoint, run_dir):
        columns = {}
        if test is not None:
            columns.update(test_columns(run_evaluation(test, run_dir / "eval", checkpoint=checkpoint,
                                                       uv_dir=config.uv_dir)))
        if real_photos is not None:
            run = RealPhotoRun(photos=real_photos, face_model_dir=face_model_dir, checkpoint=checkpoint,
                               out=run_dir / "real", uv_dir=config.uv_dir, workers=1)
            columns.update(real_photo_columns(evaluate_real_photos(run, note=click.echo)))
        return columns

    scored = test is not None or real_photos is not None
    with stopped_by_signal("rerun the same command to continue exactly from there"):
        run_ablation(config, presets=presets or ABLATION_PRESETS, progress=click.echo,
                     show_steps=sys.stderr.isatty(), evaluate=evaluate if scored else None)
    click.echo((Path(config.out) / "ablation.md").read_text(), nl=False)


@contextmanager
def stopped_by_signal(advice):
    """A run stopped by SIGTERM or SIGINT: its one line and `advice` (rank 0), then its exit status (0 for SIGTERM)."""
    try:
        yield
    except Interrupted as stop:
        if stop.lead:
            click.echo(f"{stop}: {advice}")
        sys.exit(stop.exit_status)
