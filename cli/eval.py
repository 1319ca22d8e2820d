"""`prn-eval`: AFLW2000-3D benchmark of a checkpoint or a predictions file; `prn-eval compare`: runs side by side."""

from pathlib import Path

import click

from prn.cli.common import Command, DefaultGroup, OptionConflict
from prn.model.evaluation.evaluate import run_evaluation
from prn.model.evaluation.report import compare as compare_reports
from prn.model.evaluation.report import load_report
from prn.rendering.util.errors import InputError
from prn.rendering.util.memory import reuse_freed_memory

FOLDER = click.Path(path_type=Path, file_okay=False)
FILE = click.Path(path_type=Path, dir_okay=False)


@click.group(cls=DefaultGroup)
def main():
    """Evaluate on test shards (`prn-eval --data ...`) or compare reports (`prn-eval compare A B ...`)."""
    reuse_freed_memory()  # torch's large temporaries: recycled instead of page-faulted afresh


@main.command("run", cls=Command, epilog="Compare runs: prn-eval compare A/report.json B/report.json")
@click.option("--data", required=True, type=FOLDER, help="Test shard folder (`prn-prep build` of AFLW2000-3D).")
@click.option("--checkpoint", type=FILE, default=None, help="A `prn-train` checkpoint (last.pt or best.pt).")
@click.option("--predictions", type=FILE, default=None,
              help="Instead of a checkpoint: an .npz with name (N,) and kpt68 (N, 68, 3) in original image "
                   "coordinates; optionally posmap (N, 256, 256, 3) in the shard crops (or tform (N, 3, 3) "
                   "image -> their crops) for head pose and dense NME.")
@click.option("--out", required=True, type=FOLDER,
              help="Output folder: report.json, report.md, per_sample.csv, ced.png, gallery/.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--uv-dir", type=FOLDER, default=None,
              help="UV assets of the shards' model. Default: the folder the checkpoint was trained with, "
                   "else the built-in model's; either only when of the shards' and checkpoint's model.")
def run(data, checkpoint, predictions, out, batch_size, device, uv_dir):
    """Score a checkpoint or predictions on test shards: NME by yaw bin, Table 2, CED, AUC, head pose."""
    if (checkpoint is None) == (predictions is None):
        raise OptionConflict("give exactly one of --checkpoint and --predictions")
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available")
    report = run_evaluation(data, out, checkpoint=checkpoint, predictions=predictions, batch_size=batch_size,
                            device=device, uv_dir=uv_dir, progress=click.echo)
    main_nme = report["nme2d_bbox"]
    click.echo(f"{report['count']} samples: 2D bbox NME balanced {main_nme['balanced']:.2f} %, "
               f"all {main_nme['all']:.2f} %; 3D balanced {report['nme3d_bbox']['balanced']:.2f} %; "
               f"report: {out / 'report.md'}")


@main.command("compare", cls=Command)
@click.argument("reports", nargs=-1, required=True, type=FILE)
def compare(reports):
    """Print several report.json side by side, one column per run."""
    labels = [str(path.parent) if path.name == "report.json" else str(path) for path in reports]
    click.echo(compare_reports([(label, load_report(path)) for label, path in zip(labels, reports)]), nl=False)
