"""`prn-prep verify`: a shard folder checked against its manifest and the schema table of prn.pipeline.shards."""

from pathlib import Path

import h5py
import numpy as np

from prn.pipeline.shards import (
    AFLW2000_ONLY,
    ATTRIBUTES,
    DATASETS,
    FREE_SYMBOLS,
    MANIFEST,
    READABLE_VERSIONS,
    SHARD_PATTERN,
    UV_SIZE,
    ShardFolder,
    checksum_matches,
    open_shard,
    stored_outside,
)
from prn.rendering.util.errors import InputError, first_line

AFLW2000_DATASETS = tuple(field.name for field in DATASETS if field.only == AFLW2000_ONLY)


def _attr(value):
    """An HDF5 attribute as a plain Python value (numpy scalars and bytes unwrapped)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def verify_shards(out_dir) -> list[str]:
    """Problems of a shard folder, one line each naming the file; an empty list when all is well.

    Checks: manifest present and parseable; every listed shard exists with the
    manifest's size and checksum (xxh3-128; sha256 in schema version 1); every dataset of the schema table that is not
    optional present, and every table dataset present with shape (N, ...) where
    N is the manifest's sample count of that shard, and dtype (posmap float16
    or float32, as the manifest's settings say); the file attributes present,
    schema_version the manifest's (one of READABLE_VERSIONS), the model fingerprint, uv_size,
    layout, seed and jitter the same in every shard and as the manifest; K and
    E the same in every shard; sample names unique across shards; the
    AFLW2000-3D datasets (pt3d_68) in all non-empty shards or none (all for
    layout aflw2000); no stray *.tmp files and no unlisted shard files.
    """
    out_dir = Path(out_dir)
    try:
        folder = ShardFolder(out_dir)
    except InputError as error:
        return [str(error)]
    manifest = folder.manifest
    manifest_path = out_dir / MANIFEST
    problems = []
    version = manifest.get("schema_version")
    if version not in READABLE_VERSIONS:
        problems.append(f"{manifest_path}: schema_version {version!r}, expected one of {READABLE_VERSIONS}")
    listed = list(folder.files)
    duplicates = sorted({name for name in listed if listed.count(name) > 1})
    if duplicates:
        problems.append(f"{manifest_path}: shards listed twice: {', '.join(duplicates)}")
    total = len(folder)
    if manifest.get("samples") != total:
        problems.append(f"{manifest_path}: 'samples' is {manifest.get('samples')!r} but the shards hold {total}")

    settings = manifest.get("settings") or {}
    context = {"version": version, "uv": manifest.get("uv_size", UV_SIZE),
               "fingerprint": manifest.get("model_fingerprint"), "settings": settings, "layout": settings.get("layout")}
    seen_names = {}
    widths = {}                      # shape_params / exp_params length -> first file
    optional_sets = []               # (file, frozenset of AFLW2000-3D datasets) of non-empty shards
    for entry, path in zip(manifest["shards"], folder.paths):
        if not path.is_file():
            problems.append(f"{path}: missing (listed in {MANIFEST})")
            continue
        size = path.stat().st_size
        if size != entry.get("bytes"):
            problems.append(f"{path}: {size} bytes, the manifest says {entry.get('bytes')}")
        if not checksum_matches(path, entry):
            problems.append(f"{path}: checksum differs from the manifest (corrupted or replaced)")
        try:
            with open_shard(path) as handle:
                problems.extend(_check_shard(path, handle, entry["samples"], context, widths))
                if entry["samples"] > 0:
                    optional_sets.append((path, frozenset(name for name in AFLW2000_DATASETS if name in handle)))
                if "name" in handle and h5py.check_string_dtype(handle["name"].dtype):
                    for name in handle["name"].asstr()[()]:
                        if name in seen_names:
                            problems.append(f"{path}: sample name {name!r} also in {seen_names[name]}")
                        else:
                            seen_names[name] = path.name
        except Exception as error:  # h5py raises OSError, KeyError, ValueError ... for damaged files
            problems.append(f"{path}: not a readable HDF5 shard ({first_line(error)})")
    problems.extend(_check_optional(optional_sets, context["layout"]))

    for stray in sorted(out_dir.glob("*.tmp")):
        problems.append(f"{stray}: stray temporary file (an interrupted write?)")
    for unlisted in sorted({p.name for p in out_dir.glob(SHARD_PATTERN)} - set(listed)):
        problems.append(f"{out_dir / unlisted}: shard file not listed in {MANIFEST}")
    return problems


def _check_shard(path, handle, n, context, widths):
    problems = []
    for field in DATASETS:
        if not field.optional and field.name not in handle:
            problems.append(f"{path}: dataset '{field.name}' missing")
    for field in sorted(DATASETS, key=lambda field: field.is_string):
        outside = stored_outside(handle, field.name) if field.name in handle else None
        if outside is not None:
            problems.append(f"{path}: dataset '{field.name}' is {outside}; a shard keeps its data inside its "
                            "own file")
        elif field.name in handle:
            check = _check_strings if field.is_string else _check_numeric
            problems.extend(check(path, field, handle[field.name], n, context, widths))

    attrs = {key: _attr(value) for key, value in handle.attrs.items()}
    missing = [attribute.name for attribute in ATTRIBUTES if attribute.name not in attrs]
    if missing:
        problems.append(f"{path}: attributes missing: {', '.join(missing)}")
    if "schema_version" in attrs and attrs["schema_version"] != context["version"]:
        problems.append(f"{path}: schema_version {attrs['schema_version']!r}, the manifest's is {context['version']!r}")
    if "model_fingerprint" in attrs and attrs["model_fingerprint"] != context["fingerprint"]:
        problems.append(f"{path}: model_fingerprint {str(attrs['model_fingerprint'])[:12]}... differs from the "
                        f"manifest's {str(context['fingerprint'])[:12]}...")
    if "uv_size" in attrs and attrs["uv_size"] != context["uv"]:
        problems.append(f"{path}: uv_size {attrs['uv_size']!r}, the manifest says {context['uv']!r}")
    for key in (attribute.name for attribute in ATTRIBUTES if attribute.setting):
        if key in attrs and key in context["settings"] and attrs[key] != context["settings"][key]:
            problems.append(f"{path}: attribute {key} {attrs[key]!r}, the manifest says {context['settings'][key]!r}")
    return problems


def _check_numeric(path, field, dataset, n, context, widths):
    problems = []
    expected = field.dims(context["uv"])
    shape = dataset.shape
    if (len(shape) != 1 + len(expected) or shape[0] != n
            or any(want not in FREE_SYMBOLS and got != want for got, want in zip(shape[1:], expected))):
        wanted = ", ".join(["N=" + str(n)] + [str(dim) for dim in expected])
        problems.append(f"{path}: dataset '{field.name}' has shape {shape}, expected ({wanted})")
    elif field.free and n > 0:
        first = widths.setdefault(field.name, (shape[1], path.name))
        if first[0] != shape[1]:
            problems.append(f"{path}: dataset '{field.name}' has {shape[1]} columns, {first[1]} has {first[0]}")
    allowed = field.dtypes
    chosen = context["settings"].get(field.chosen_by) if field.chosen_by else None
    if chosen in allowed:
        allowed = (chosen,)
    if dataset.dtype.name not in allowed:
        problems.append(f"{path}: dataset '{field.name}' has dtype {dataset.dtype.name}, expected "
                        f"{' or '.join(allowed)}")
    return problems


def _check_strings(path, field, dataset, n, context, widths):
    problems = []
    if dataset.shape != (n,):
        problems.append(f"{path}: dataset '{field.name}' has shape {dataset.shape}, expected ({n},)")
    if h5py.check_string_dtype(dataset.dtype) is None:
        problems.append(f"{path}: dataset '{field.name}' has dtype {dataset.dtype}, expected UTF-8 strings")
    return problems


def _check_optional(optional_sets, layout):
    """The AFLW2000-3D datasets in all non-empty shards or none (all for layout aflw2000)."""
    if not optional_sets:
        return []
    if layout in ("aflw2000", "300w-lp"):
        expected = frozenset(AFLW2000_DATASETS) if layout == "aflw2000" else frozenset()
        source = f"layout {layout}"
    else:
        expected = optional_sets[0][1]
        source = f"as in {optional_sets[0][0].name}"
    problems = []
    for path, present in optional_sets:
        if present != expected:
            lacking, extra = sorted(expected - present), sorted(present - expected)
            parts = ([f"lacks {', '.join(lacking)}"] if lacking else []) + (
                [f"has unexpected {', '.join(extra)}"] if extra else [])
            problems.append(f"{path}: {'; '.join(parts)} ({source})")
    return problems
