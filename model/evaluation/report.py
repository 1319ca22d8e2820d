"""`prn-eval`'s outputs: report.json, per_sample.csv, the CED plot, report.md with a gallery; `compare`."""

import csv
import io
import json
import math
import re
from pathlib import Path

import cv2
import numpy as np

from prn.model.evaluation import metrics as benchmark
from prn.model.evaluation.metrics import AUC_THRESHOLDS, NME_KEYS
from prn.rendering.geometry.crop import image_to_crop
from prn.rendering.raster.pictures import canvas_pixels, draw_landmarks
from prn.rendering.util.atomic import all_or_nothing, atomic_path, write_png
from prn.rendering.util.errors import InputError

REPORT = "report.json"
PER_SAMPLE = "per_sample.csv"
CED_PLOT = "ced.png"
REPORT_MD = "report.md"
GALLERY = "gallery"
GALLERY_COUNT = 20
TRUTH_COLOR = (0, 200, 0)          # RGB
PREDICTED_COLOR = (230, 0, 0)

def write_outputs(out, report, per_sample, test_set, predicted):
    """Write gallery/, per_sample.csv, ced.png, report.md and, last, report.json into `out`.

    When a write fails (a full disk), the files this call wrote and the
    folders it made are removed again: no report without its parts, no empty folder.
    """
    out = Path(out)
    headline = per_sample["nme2d_bbox"]
    worst = np.argsort(-headline, kind="stable")[:GALLERY_COUNT]
    with all_or_nothing(out / GALLERY) as written:
        gallery = write_gallery(out / GALLERY, worst, test_set, predicted, written)
        write_text(out / PER_SAMPLE, per_sample_csv(per_sample), written)
        write_png(out / CED_PLOT, draw_ced(headline, ced_range(report["table2"])))
        written.append(out / CED_PLOT)
        write_text(out / REPORT_MD, report_markdown(report, per_sample, worst, gallery), written)
        write_text(out / REPORT, json.dumps(_jsonable(report), indent=2) + "\n", written)


def write_text(path, text, written):
    """Write `text` to `path` atomically and add `path` to the list `written`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    written.append(path)


def _jsonable(value):
    """NaN and inf become null (JSON has neither); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def per_sample_csv(per_sample) -> str:
    """The per-sample columns as CSV text: one row per sample in shard order, empty cells for NaN."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    columns = list(per_sample)
    writer.writerow(["index"] + columns)
    for index in range(len(per_sample["name"])):
        row = [index]
        for column in columns:
            value = per_sample[column][index]
            if isinstance(value, (float, np.floating)):
                value = f"{value:.6g}" if math.isfinite(value) else ""
            row.append(value)
        writer.writerow(row)
    return text.getvalue()


def _file_name(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "sample"


def gallery_picture(crop, truth, predicted, zoom=2) -> np.ndarray:
    """crop (256, 256, 3) uint8 RGB and two (68, >=2) landmark sets in its pixels -> RGB image zoom times larger.

    Ground truth: green dots; prediction: red crosses, each joined to its ground truth by a thin line.
    """
    side = crop.shape[0] * zoom
    canvas = cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC)
    (real, real_shown), (guess, guess_shown) = canvas_pixels(truth, zoom), canvas_pixels(predicted, zoom)
    for start, end in zip(real[real_shown & guess_shown].tolist(), guess[real_shown & guess_shown].tolist()):
        cv2.line(canvas, start, end, (255, 255, 255), 1, cv2.LINE_AA)
    draw_landmarks(canvas, truth, TRUTH_COLOR, "dot", 3, zoom)
    return draw_landmarks(canvas, predicted, PREDICTED_COLOR, "cross", 9, zoom)


def write_gallery(folder, rows, test_set, predicted, written) -> list:
    """One PNG per sample index in `rows` (worst first) under `folder`, each added to the list `written`;
    stale PNGs removed. Returns the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    tforms = test_set.tform[rows]
    truth = image_to_crop(test_set.truth[rows], tforms)
    guess = image_to_crop(predicted[rows], tforms)
    names = []
    for rank, (row, crop) in enumerate(zip(rows, test_set.images(rows)), start=1):
        name = f"{rank:02d}_{_file_name(test_set.name[row])}.png"
        write_png(folder / name, gallery_picture(crop, truth[rank - 1], guess[rank - 1]))
        written.append(folder / name)
        names.append(name)
    for stale in folder.glob("*.png"):
        if stale.name not in names:
            stale.unlink()
    return names


def ced_range(table):
    """Upper end of the CED plot's NME axis: 10 %, or the 90 % point of the errors rounded up to 5 %."""
    p90 = table[8]
    return 10.0 if not math.isfinite(p90) or p90 <= 10 else 5.0 * math.ceil(p90 / 5.0)


def _tick_step(span):
    for step in (0.5, 1, 2, 5, 10, 20, 50, 100):
        if span / step <= 10:
            return step
    return span / 10


def draw_ced(errors, x_max, width=720, height=480) -> np.ndarray:
    """(height, width, 3) uint8 RGB plot of the CED of errors (N,) percent over [0, x_max]: axes, ticks, labels."""
    left, right, top, bottom = 80, 30, 50, 70
    canvas = np.full((height, width, 3), 255, np.uint8)
    font, black, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (225, 225, 225)
    plot_w, plot_h = width - left - right, height - top - bottom

    def to_pixel(x, y):
        return (int(round(left + x / x_max * plot_w)), int(round(top + (1 - y) * plot_h)))

    def text(label, anchor, scale=0.45, align="center"):
        (w, h), _ = cv2.getTextSize(label, font, scale, 1)
        x = anchor[0] - (w // 2 if align == "center" else w if align == "right" else 0)
        cv2.putText(canvas, label, (x, anchor[1] + h // 2), font, scale, black, 1, cv2.LINE_AA)

    step = _tick_step(x_max)
    for tick in np.arange(0, x_max + step / 2, step):
        x, y = to_pixel(tick, 0)
        cv2.line(canvas, (x, top), (x, y), grey, 1)
        cv2.line(canvas, (x, y), (x, y + 5), black, 1)
        text(f"{tick:g}", (x, y + 16))
    for tick in np.linspace(0, 1, 11):
        x, y = to_pixel(0, tick)
        cv2.line(canvas, (x, y), (left + plot_w, y), grey, 1)
        cv2.line(canvas, (x - 5, y), (x, y), black, 1)
        text(f"{tick:.1f}", (x - 8, y), align="right")
    for line, threshold in enumerate(AUC_THRESHOLDS):
        if threshold < x_max:
            x, _ = to_pixel(threshold, 0)
            for y in range(top, top + plot_h, 8):
                cv2.line(canvas, (x, y), (x, min(y + 4, top + plot_h)), (150, 150, 150), 1)
            text(f"AUC {benchmark.auc(errors, threshold):.3f}", (x + 4, top + 12 + 16 * line), scale=0.4,
                 align="left")
    cv2.rectangle(canvas, to_pixel(0, 1), to_pixel(x_max, 0), black, 1)

    errors = np.asarray(errors, np.float64)
    shown = np.sort(errors[errors <= x_max])
    # a staircase: level i / N from the i-th smallest error to the next
    xs = np.concatenate([[0.0], np.repeat(shown, 2), [x_max]])
    ys = np.repeat(np.arange(len(shown) + 1) / max(len(errors), 1), 2)
    curve = np.array([to_pixel(x, y) for x, y in zip(xs, ys)], np.int32)
    cv2.polylines(canvas, [curve], False, (20, 80, 200), 2, cv2.LINE_AA)

    text(f"CED of the 2D NME (bbox), {len(errors)} samples", (left + plot_w // 2, top // 2), scale=0.6)
    text("NME (%)", (left + plot_w // 2, height - 22), scale=0.55)
    label = np.full((30, 200, 3), 255, np.uint8)
    cv2.putText(label, "fraction of samples", (8, 20), font, 0.55, black, 1, cv2.LINE_AA)
    label = cv2.rotate(label, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = top + (plot_h - label.shape[0]) // 2
    canvas[y0:y0 + label.shape[0], 4:4 + label.shape[1]] = label
    return canvas


# report["dense"] keys and their names in report.md and compare
DENSE_ROWS = (("nme2d", "NME 2D"), ("nme3d", "NME 3D"), ("normal_angle", "normal angle"),
              ("nose_depth_ratio", "nose depth ratio"), ("mean_face_normal_angle", "mean face: normal angle"),
              ("mean_face_nose_depth_ratio", "mean face: nose depth ratio"))


def _number(value, digits=2):
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def report_markdown(report, per_sample, worst, gallery) -> str:
    """report.md: the NME tables, Table 2, AUC and failures, pose, dense NME, the CED and the worst samples."""
    bins = report["bins"]
    source = report["source"]
    scored = source.get("checkpoint") or source.get("predictions")
    lines = ["# prn-eval report", "",
             f"Data `{source['data']}`: {report['count']} samples, ground truth `{source['truth']}`; "
             f"predictions from `{scored}`{_views(source)}. {report['ms_per_sample']} ms per sample.", "",
             "## NME (%) by |yaw| of the ground-truth pose", "",
             f"| NME | [0, 30] ({bins['0-30']}) | (30, 60] ({bins['30-60']}) | (60, 90] ({bins['60-90']}) "
             "| balanced | all |", "| --- | --- | --- | --- | --- | --- |"]
    titles = {"nme2d_bbox": "2D, bbox", "nme3d_bbox": "3D, bbox", "nme2d_iod": "2D, iod", "nme3d_iod": "3D, iod"}
    for key in NME_KEYS:
        lines.append(f"| {titles[key]} | " + " | ".join(_number(report[key][column]) for column in
                                                        (*benchmark.YAW_BINS, "balanced", "all")) + " |")
    lines += ["", "Balanced: the mean of the bin means (an empty bin is left out); 3D: z relative to each side's "
              "mean; iod: outer eye corners 36-45.", "",
              "## Table 2: 2D bbox NME (%) at the 10 %, 20 %, ..., 100 % points of the sorted samples", "",
              "| " + " | ".join(f"{point} %" for point in benchmark.TABLE2_POINTS) + " |",
              "| " + " | ".join("---" for _ in benchmark.TABLE2_POINTS) + " |",
              "| " + " | ".join(_number(value) for value in report["table2"]) + " |", "",
              f"AUC of the CED (2D bbox) over 0-7 %: {_number(report['auc7'], 3)}, over 0-10 %: "
              f"{_number(report['auc10'], 3)}; failures (NME > 10 %): {_number(100 * report['failure10'], 1)} % "
              "of the samples.", ""]
    if report["pose_mae"] is not None:
        pose = report["pose_mae"]
        lines += ["## Head pose: mean absolute error (degrees)", "", "| yaw | pitch | roll | mean | geodesic |",
                  "| --- | --- | --- | --- | --- |",
                  "| " + " | ".join(_number(pose[key]) for key in ("yaw", "pitch", "roll", "mean", "geodesic"))
                  + " |", "",
                  "## The dense face: face_ind points against the shard's position map", "",
                  "NME (%) normalised by the bbox of kpt68; normal angle (degrees) between the predicted and the "
                  "true surface normals; nose depth over the true nose depth (1: as deep). The mean face: the "
                  "UV layout's mean face placed on each true face by a 3D similarity.", "",
                  "| measure | [0, 30] | (30, 60] | (60, 90] | balanced | all |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for key, title in DENSE_ROWS:
            if key in report["dense"]:
                lines.append(f"| {title} | " + " | ".join(_number(report["dense"][key][column]) for column in
                                                           (*benchmark.YAW_BINS, "balanced", "all")) + " |")
        lines.append("")
    lines += ["## Cumulative error distribution", "", f"![CED]({CED_PLOT})", "",
              f"## The {len(worst)} worst samples by 2D bbox NME", "",
              "Green dots: ground truth; red crosses: prediction.", "",
              "| rank | sample | yaw (deg) | NME 2D bbox % | NME 3D bbox % | crop |",
              "| --- | --- | --- | --- | --- | --- |"]
    for rank, (row, image) in enumerate(zip(worst, gallery), start=1):
        lines.append(f"| {rank} | {per_sample['name'][row]} | {per_sample['yaw_deg'][row]:.1f} | "
                     f"{_number(per_sample['nme2d_bbox'][row])} | {_number(per_sample['nme3d_bbox'][row])} | "
                     f"![{rank}]({GALLERY}/{image}) |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Comparing runs


def load_report(path) -> dict:
    """A report.json; InputError (one line) when missing or not a prn-eval report."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such report") from None
    except RecursionError:
        raise InputError(f"{path}: not readable JSON (nested too deep)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(report, dict) or not all(key in report for key in (*NME_KEYS, "count")):
        raise InputError(f"{path}: not a prn-eval report.json")
    return report


def _compare_rows():
    rows = [("samples", lambda r: r["count"], 0)]
    for key in NME_KEYS:
        for column in (*benchmark.YAW_BINS, "balanced", "all"):
            rows.append((f"{key} {column}", lambda r, key=key, column=column: r[key][column], 2))
    rows += [(f"table2 {point}%", lambda r, i=i: r["table2"][i], 2) for i, point in enumerate(benchmark.TABLE2_POINTS)]
    rows += [("auc7", lambda r: r["auc7"], 3), ("auc10", lambda r: r["auc10"], 3),
             ("failure10", lambda r: r["failure10"], 3)]
    rows += [(f"pose_mae {angle}", lambda r, angle=angle: (r["pose_mae"] or {}).get(angle), 2)
             for angle in ("yaw", "pitch", "roll", "mean", "geodesic")]
    rows += [(f"dense {key} {column}", lambda r, key=key, column=column: (r["dense"] or {}).get(key, {}).get(column), 2)
             for key, _ in DENSE_ROWS for column in ("balanced", "all")]
    return rows


def compare(reports) -> str:
    """Several runs side by side: reports is a list of (label, report dict); one text row per number.

    A figure missing from a report is shown as "-"; one that is not a number is an InputError naming it.
    """
    header = ["metric"] + [label for label, _ in reports]
    table = [header]
    for title, getter, digits in _compare_rows():
        cells = []
        for label, report in reports:
            try:
                value = getter(report)
            except (KeyError, TypeError, IndexError, AttributeError):
                value = None
            kinds = int if digits == 0 else (int, float)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                raise InputError(f"{label}: {title} is {json.dumps(value)[:40]}, not a number")
            cells.append("-" if value is None else str(value) if digits == 0 else _number(float(value), digits))
        table.append([title] + cells)
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                               for column, (cell, width) in enumerate(zip(row, widths))).rstrip()
                     for row in table) + "\n"


def _views(source) -> str:
    views = source.get("views", 1)
    text = "" if views == 1 else f", the mean of {views} turned and mirrored views of each crop"
    return text + (", landmarks of the morphable model fitted to each map" if source.get("landmarks") == "fit" else "")
