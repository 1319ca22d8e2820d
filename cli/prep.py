"""`prn-prep`: make and prepare the data a PRN trains on."""

from pathlib import Path

import click

from prn.cli.common import (
    Group,
    model_option,
    parallel_options,
    recorded_face_model_dir,
    recorded_model_option,
    resolve_face_model_dir,
)
from prn.pipeline.augment import MAX_ROTATIONS, AugmentSettings, augment, parse_range, rotation_grid
from prn.pipeline.build import BuildSettings, build, dataset_root, detect_layout
from prn.pipeline.datasets import LAYOUTS, SUBSETS_300WLP
from prn.pipeline.face_match import FaceModelClaim, manifest_claim
from prn.pipeline.fit import FitSettings, fit_folder
from prn.pipeline.provenance import find_dataset_record
from prn.pipeline.shards import MANIFEST, load_manifest
from prn.pipeline.synthetic.builtin import DEFAULT_SEED, DEFAULT_VERTICES, MAX_VERTICES, write_synthetic_model
from prn.pipeline.synthetic.synth import PITCH_SPREADS, WORLDS, SynthSettings, synthesize
from prn.rendering.morphable.bfm import load_face_vertices, load_morphable_model
from prn.rendering.morphable.uv_assets import compute_uv_assets, write_uv_assets
from prn.rendering.util.errors import InputError

SEED = click.IntRange(min=0, max=2**63 - 1)   # what numpy's generators take


@click.group(cls=Group)
@click.version_option(package_name="prn-toolkit")
def main():
    """Prepare PRN training data: morphable models, UV assets, datasets, shards."""


@main.command("synth-model")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write BFM.mat, BFM_UV.mat and face_vertex_ind.npy into.")
@click.option("--vertices", "n_vertices", type=click.IntRange(min=500, max=MAX_VERTICES), default=DEFAULT_VERTICES,
              show_default=True, help="Approximate vertex count (the BFM has 53,215).")
@click.option("--seed", type=SEED, default=DEFAULT_SEED, show_default=True,
              help="Generator seed; the same seed gives the same bytes on any machine.")
def synth_model(out_dir, n_vertices, seed):
    """Generate the built-in synthetic face model in the BFM file layout.

    A procedural face (199 identity, 29 expression and 199 albedo basis
    vectors, 68 iBUG landmarks, a cylindrical UV unwrap) written so that every
    command that reads a real BFM folder reads it unchanged.
    """
    write_synthetic_model(out_dir, n_vertices=n_vertices, seed=seed)
    face_model = load_morphable_model(out_dir)
    click.echo(f"wrote {out_dir}: {face_model.n_vertices} vertices, {len(face_model.triangles)} triangles, "
               f"{face_model.n_shape} identity / {face_model.n_exp} expression basis vectors")


@main.command("uv-data")
@model_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Output folder. Default: MODEL/uv<size>/.")
@click.option("--size", type=click.IntRange(min=16, max=4096), default=256, show_default=True,
              help="UV map side in pixels.")
@click.option("--face-vertices", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A .npy of 0-based vertex indices of the face (no neck, no ears) for the face "
                   "mask. Default: the model's face_vertex_ind.npy, else every vertex.")
def uv_data(face_model_dir, out_dir, size, face_vertices):
    """Write a model's UV assets: landmark pixels, face mask, weight masks.

    Files: uv_kpt_ind.txt, uv_face_mask.png, face_ind.txt, triangles.txt,
    canonical_vertices.npy and weight_mask_<preset>.npy/.png for the presets
    weight1 (1:1:1:0), weight2 (3:2:1:0), weight3 (10:3:2:0) and prnet
    (16:4:3:0) over landmarks : eyes, nose, mouth : other face : neck.
    """
    face_model_dir = resolve_face_model_dir(face_model_dir)
    face_model = load_morphable_model(face_model_dir)
    subset = load_face_vertices(face_vertices, face_model.n_vertices) if face_vertices else None
    assets = compute_uv_assets(face_model, size=size, face_vertices=subset)
    out_dir = out_dir if out_dir is not None else face_model_dir / f"uv{size}"
    write_uv_assets(assets, out_dir)
    click.echo(f"wrote {out_dir}: {assets.face_mask.sum()} face pixels, {len(assets.triangles)} triangles")


@main.command("synth")
@model_option
@click.option("--layout", type=click.Choice(LAYOUTS), required=True,
              help="300w-lp: 300W_LP/<SUBSET>/<name>.jpg + .mat (+ landmarks/); "
                   "aflw2000: AFLW2000/imageNNNNN.jpg + .mat with pt3d_68.")
@click.option("--count", type=click.IntRange(min=1), required=True, help="Number of samples.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Output folder (the layout's top folder is made inside it).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Sample i depends only on (seed, i): the same bytes for any worker count.")
@click.option("--image-size", type=click.IntRange(min=64, max=4096), default=450, show_default=True,
              help="Square image side in pixels (300W-LP: 450).")
@click.option("--world", type=click.Choice(WORLDS), default="photo", show_default=True,
              help="face: the model's face alone over a background; head: with cranium, hair, neck and "
                   "clothed shoulders; photo: also harder light and camera effects (blur, noise, JPEG, grey); "
                   "portrait: also cast shadows, facial hair, make-up and glasses.")
@click.option("--pitch", type=click.Choice(PITCH_SPREADS), default="normal", show_default=True,
              help="How far faces look up and down: normal, about N(0, 10) degrees; wide, half of the faces "
                   "uniform over +-45 degrees instead.")
@parallel_options
def synth(face_model_dir, layout, count, out_dir, seed, image_size, world, pitch, workers, scheduler):
    """Render a synthetic 300W-LP or AFLW2000-3D dataset in the real file formats.

    Identity, expression and albedo drawn from the model's standard
    deviations, lighting and colour, a pose spread like the target dataset,
    varied backgrounds and occluders; exact ground truth in the .mat files.
    OUT/prn-dataset.json records the model and settings: a re-run with the
    same ones keeps finished samples (resume), one with others stops.
    """
    settings = SynthSettings(face_model_dir=resolve_face_model_dir(face_model_dir), out_dir=out_dir, layout=layout,
                             seed=seed, image_size=image_size, world=world, pitch=pitch)
    summary = synthesize(settings, count, workers=workers, scheduler=scheduler)
    click.echo(summary.line(f"synth {out_dir}"))


@main.command("fit")
@model_option
@click.option("--src", "src_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder of images with <name>.pts (iBUG, 68 points) or <name>.mat (pt2d 2 x 68).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Output folder: the images plus 300W-LP-format .mat files, same relative paths.")
@parallel_options
def fit(face_model_dir, src_dir, out_dir, workers, scheduler):
    """Fit pose, identity and expression to 68 2D landmarks per image.

    Turns landmark-only datasets into 300W-LP-style training data for
    `prn-prep build`. Texture, lighting and colour are not fitted (left
    neutral). Bad samples are listed in OUT/rejects.jsonl; OUT/prn-dataset.json
    records the model: a re-run with the same one keeps finished samples,
    one with another stops.
    """
    settings = FitSettings(face_model_dir=resolve_face_model_dir(face_model_dir), src_dir=src_dir, out_dir=out_dir)
    summary = fit_folder(settings, workers=workers, scheduler=scheduler)
    click.echo(summary.line(f"fit {out_dir}"))


@main.command("build")
@click.option("--src", "src_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="300W_LP or AFLW2000 folder (or a folder holding one).")
@recorded_model_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Output folder for shard-NNNNN.h5, manifest.json and rejects.jsonl.")
@click.option("--layout", type=click.Choice(("auto",) + LAYOUTS), default="auto", show_default=True,
              help="Dataset layout; auto detects it from the folder.")
@click.option("--subsets", default=None, metavar="A,B,...",
              help=f"300W-LP subsets to include (default all: {','.join(SUBSETS_300WLP)}).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the per-sample crop jitter.")
@click.option("--jitter/--no-jitter", default=None,
              help="Crop jitter of docs/formats.md section 6 (default: on for 300W-LP, off for AFLW2000-3D).")
@click.option("--shard-size", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Samples per shard (one task each).")
@click.option("--posmap-dtype", type=click.Choice(["float16", "float32"]), default="float16",
              show_default=True, help="Storage type of the position maps.")
@click.option("--strict", is_flag=True, help="Exit with status 3 when any sample was rejected.")
@parallel_options
def build_command(src_dir, face_model_dir, out_dir, layout, subsets, seed, jitter, shard_size, posmap_dtype, strict,
                  workers, scheduler):
    """Build HDF5 shards of 256 x 256 crops and UV position maps from 300W-LP or AFLW2000-3D.

    The model is the one the data was made with (its prn-dataset.json,
    written by `synth` and `fit`); real data records none: give --model or
    set PRN_MODEL_DIR.
    Resumable: finished shards (file and record match) are skipped, partial
    ones redone. Rejected samples are listed with their reasons in
    OUT/rejects.jsonl and manifest.json; the run goes on.
    """
    if not src_dir.is_dir():
        raise InputError(f"{src_dir}: source folder not found")
    layout = detect_layout(src_dir) if layout == "auto" else layout
    record = find_dataset_record(dataset_root(src_dir, layout))
    claim = record.face_model if record else FaceModelClaim(str(src_dir), None)
    face_model_dir = recorded_face_model_dir(face_model_dir, claim)
    settings = BuildSettings(face_model_dir=face_model_dir, out_dir=out_dir, layout=layout, seed=seed,
                             jitter=(layout == "300w-lp") if jitter is None else jitter, shard_size=shard_size,
                             posmap_dtype=posmap_dtype)
    chosen = [s.strip() for s in subsets.split(",") if s.strip()] if subsets else None
    summary = build(settings, src_dir, subsets=chosen, workers=workers, scheduler=scheduler)
    click.echo(summary.line(f"build {out_dir}"))
    if strict and summary.rejects:
        click.echo(f"finished with {len(summary.rejects)} rejects (--strict): see {out_dir / 'rejects.jsonl'}",
                   err=True)
        raise SystemExit(3)


@main.command("augment")
@click.option("--src", "src_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Shards folder made by `prn-prep build`.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Output folder for the augmented shards.")
@recorded_model_option
@click.option("--pitch", default="0", show_default=True, metavar="A:B:STEP", help="Pitch rotations, degrees.")
@click.option("--yaw", default="0", show_default=True, metavar="A:B:STEP", help="Yaw rotations, degrees.")
@click.option("--roll", default="0", show_default=True, metavar="A:B:STEP", help="Roll rotations, degrees.")
@click.option("--random", "random_count", type=click.IntRange(min=0, max=MAX_ROTATIONS), default=0, show_default=True,
              help="Draw this many rotations per sample uniformly in the A:B ranges instead of the grid.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the random rotations and the crop jitter (per sample name).")
@click.option("--shard-size", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Augmented samples per output shard (one task each).")
@parallel_options
def augment_command(src_dir, out_dir, face_model_dir, pitch, yaw, roll, random_count, seed, shard_size, workers,
                    scheduler):
    """New views of every shard sample: its 3D face turned in pitch, yaw and roll.

    A grid (--yaw -30:30:15) makes every combination per sample; --random K
    draws K rotations per sample from the ranges. The texture comes from the
    source crop (hidden side mirrored, then filled); position maps, landmarks
    and poses come from the rotated geometry. Rotations past 90 degrees of
    yaw or out of the frame are rejected. Output: build's shard schema plus
    source_name and rotation_deg. The model is the one the source shards
    were built with (their manifest.json).
    """
    manifest = load_manifest(src_dir)
    source = manifest["settings"]
    axes = [parse_range(value, option) for value, option in ((pitch, "--pitch"), (yaw, "--yaw"), (roll, "--roll"))]
    face_model_dir = recorded_face_model_dir(face_model_dir, manifest_claim(manifest, str(src_dir / MANIFEST)))
    settings = AugmentSettings(
        face_model_dir=face_model_dir, out_dir=out_dir, layout=source["layout"],
        rotations=() if random_count else rotation_grid(*axes), random=random_count,
        ranges=tuple((low, high) for low, high, _ in axes), seed=seed, jitter=source["jitter"],
        shard_size=shard_size, posmap_dtype=source["posmap_dtype"])
    summary = augment(settings, src_dir, workers=workers, scheduler=scheduler)
    click.echo(summary.line(f"augment {out_dir}"))


@main.command("inspect")
@click.argument("shard_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", "grid_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write a PNG grid of samples here: each crop with its 68 landmarks beside its "
                   "position map (x, y, z as RGB) with the landmark pixels marked.")
@click.option("--count", type=click.IntRange(min=1), default=16, show_default=True,
              help="Samples in the grid (chosen reproducibly, at most all of them).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the grid's sample choice.")
def inspect_command(shard_dir, grid_path, count, seed):
    """Summarise a `prn-prep build` folder and optionally draw a grid of samples.

    Prints the samples per shard and per subset, the rejects and histograms
    of pitch, yaw and roll (15-degree bins over -90..90) read from the
    shards. With --out, writes the PNG grid; its red crosses (landmarks read
    from the position map) should sit on the green dots (kpt68).
    """
    from prn.pipeline.inspect import draw_grid, format_summary, summarize_shards
    click.echo(format_summary(summarize_shards(shard_dir), shard_dir))
    if grid_path is not None:
        result = draw_grid(shard_dir, grid_path, count=count, seed=seed)
        click.echo(f"wrote {grid_path}: {len(result['samples'])} samples "
                   f"(landmark pixels from {result['keypoints_from']})")


@main.command("verify")
@click.argument("shard_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
def verify_command(shard_dir):
    """Check a `prn-prep build` folder against its manifest.json.

    Checks every shard's presence, size and checksum, the HDF5 schema (datasets,
    shapes, dtypes, attributes, schema version, one model fingerprint), that
    sample names are unique and that no temporary files are left. Prints
    "OK: N shards, M samples" and exits 0, or one line per problem and exits 1.
    """
    from prn.pipeline.verify import verify_shards
    manifest = load_manifest(shard_dir)
    problems = verify_shards(shard_dir)
    if problems:
        for problem in problems:
            click.echo(problem)
        raise SystemExit(1)
    click.echo(f"OK: {len(manifest['shards'])} shards, {manifest.get('samples')} samples")
