"""manifest.json of a shard folder: written from the shard records when a stage ends, read by every reader.

After a stage has written the manifest, the folder holds exactly the shards it lists.
"""

import hashlib
import json
from pathlib import Path

from prn.pipeline.shards.settings import format_entries, recorded_settings, tool_version
from prn.pipeline.shards.writer import SHARD_PATTERN, read_record, shard_name
from prn.pipeline.stage import REJECTS_FILE
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError, first_line

MANIFEST = "manifest.json"


def write_manifest(settings, root, tasks, fingerprint, rejects):
    """manifest.json from the shard records: shards, counts, checksums, inputs covered, rejects.

    settings: the stage's settings dataclass (out_dir is where the shards are);
    tasks: its shard tasks (index, samples), one shard each.
    """
    shards = []
    for task in tasks:
        record = read_record(settings.out_dir, shard_name(task.index))
        shards.append({"file": shard_name(task.index), "samples": record["samples"], "checksum": record["checksum"],
                       "bytes": record["bytes"], "inputs": len(task.samples)})
    names = [name for task in tasks for name in task.samples]
    manifest = {
        **format_entries(fingerprint),
        "tool_version": tool_version(),
        "settings": recorded_settings(settings),
        "inputs": {"root": str(root), "samples": len(names),
                   "names_sha256": hashlib.sha256("\n".join(names).encode("utf-8", "surrogateescape")).hexdigest()},
        "samples": sum(shard["samples"] for shard in shards),
        "shards": shards,
        "rejects": rejects,
        "rejects_file": REJECTS_FILE,
    }
    with atomic_path(Path(settings.out_dir) / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def remove_unlisted_shards(out_dir, listed):
    """Delete the shard files (and their records) in out_dir that are not in `listed` (file names).

    They are the shards of an earlier run of another plan (a smaller
    --shard-size, more samples); the caller holds the folder's lock and has
    written the manifest, so no run needs them. Returns the deleted paths.
    """
    out_dir = Path(out_dir)
    removed = []
    for path in sorted([*out_dir.glob(SHARD_PATTERN), *out_dir.glob(f"{SHARD_PATTERN}.json")]):
        if path.name.removesuffix(".json") not in listed:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def load_manifest(out_dir) -> dict:
    """The parsed manifest.json of a shard folder; InputError (one line) when absent or malformed."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError(f"{out_dir}: shard folder not found")
    path = out_dir / MANIFEST
    if not path.is_file():
        raise InputError(f"{path}: missing (not a `prn-prep build` output folder?)")
    try:
        manifest = json.loads(path.read_text())
    except RecursionError:
        raise InputError(f"{path}: not readable JSON (nested too deep)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not readable JSON ({first_line(error)})") from None
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(shards, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("file"), str) and "/" not in entry["file"]
            and _count(entry.get("samples")) for entry in shards):
        raise InputError(f"{path}: malformed (expected a 'shards' list of {{file, samples, checksum, bytes}})")
    if not _count(manifest.get("samples", 0)) or not isinstance(manifest.get("settings", {}), dict):
        raise InputError(f"{path}: malformed ('samples' must be a count, 'settings' a mapping)")
    return manifest


MAX_SAMPLES = 10 ** 12   # far above any dataset, below what a count of samples could index


def _count(value) -> bool:
    """Is the value a sample count: an int (not a bool) from 0 to MAX_SAMPLES?"""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SAMPLES
