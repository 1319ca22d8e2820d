"""The paper's ablation: the same data and seed trained with each UV weighting, then one table.

Each weighting trains into OUT/<preset>, resuming its last.pt when there is
one, so an interrupted ablation continues where it stopped and a finished one
only rebuilds the table. With the same seed every run sees the same samples
in the same order from the same initial weights: the weighting is the only
difference.
"""

import json
import math
from dataclasses import replace
from pathlib import Path

from prn.model.checkpoint import BEST, CHECKPOINT
from prn.model.training.config import TrainConfig
from prn.model.training.log import METRICS
from prn.model.training.train import train
from prn.rendering.morphable.uv_assets import WEIGHT_PRESETS
from prn.rendering.util.atomic import atomic_path

ABLATION_PRESETS = ("weight1", "weight2", "weight3", "prnet")
TABLE_JSON = "ablation.json"
TABLE_MARKDOWN = "ablation.md"


def run_ablation(base: TrainConfig, presets=ABLATION_PRESETS, progress=print, show_steps=False, evaluate=None):
    """Train one run per weighting under base.out; returns the table rows.

    evaluate: optional callable (checkpoint path, run folder) -> dict of extra
    columns (e.g. the AFLW2000-3D report of the best checkpoint).
    """
    out = Path(base.out)
    rows = []
    for preset in presets:
        config = replace(base, weights=preset, out=str(out / preset))
        progress(f"ablation: {preset} ({ratio_text(preset)}) -> {config.out}")
        train(config, resume=(Path(config.out) / CHECKPOINT).is_file(), progress=progress, show_steps=show_steps)
        row = {"weights": preset, "ratio": ratio_text(preset), **curve_summary(Path(config.out) / METRICS)}
        if evaluate is not None:
            row.update(evaluate(Path(config.out) / BEST, Path(config.out)))
        rows.append(row)
    write_table(out, rows)
    return rows


def test_columns(report):
    """The table's columns from a prn-eval report: 2D/3D bbox NME balanced and all, 2D iod balanced."""
    return {"test_nme2d_bbox_balanced": report["nme2d_bbox"]["balanced"],
            "test_nme2d_bbox_all": report["nme2d_bbox"]["all"],
            "test_nme3d_bbox_balanced": report["nme3d_bbox"]["balanced"],
            "test_nme2d_iod_balanced": report["nme2d_iod"]["balanced"]}


def real_photo_columns(summary):
    """The table's columns from a `prn-eval real` summary: the network's and the mean face's 2D bbox NME."""
    return {"real_nme2d_bbox_balanced": summary["network"]["nme2d_bbox"]["balanced"],
            "real_nme2d_bbox_all": summary["network"]["nme2d_bbox"]["all"],
            "real_mean_face_nme2d_bbox_balanced": summary["mean_face"]["nme2d_bbox"]["balanced"]}


def ratio_text(preset):
    return ":".join(f"{value:g}" for value in WEIGHT_PRESETS[preset])


def curve_summary(metrics_path):
    """Best and final validation NME (percent) and the epochs trained, from a run's metrics.jsonl."""
    epochs = [json.loads(line) for line in Path(metrics_path).read_text().splitlines()]
    epochs = [record for record in epochs if "val_nme" in record]
    if not epochs:
        return {"epochs": 0, "best_val_nme": math.nan, "final_val_nme": math.nan}
    return {"epochs": len(epochs), "best_val_nme": 100 * min(r["val_nme"] for r in epochs),
            "final_val_nme": 100 * epochs[-1]["val_nme"]}


def write_table(out, rows):
    """OUT/ablation.json and OUT/ablation.md (one row per weighting, NMEs in percent)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.2f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    with atomic_path(Path(out) / TABLE_JSON) as tmp:
        tmp.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    with atomic_path(Path(out) / TABLE_MARKDOWN) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return "\n".join(lines)
