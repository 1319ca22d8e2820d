"""The shard format, owned here: schema, writer, manifest and the one reader.

schema: the tables of datasets and file attributes (schema_markdown renders
them for docs/formats.md), CROP_SIZE and UV_SIZE; settings: what a folder
records of the stage settings (manifest settings, record key, file
attributes); writer: ShardWriter, the record beside each shard and the check
of a finished one; manifest: manifest.json; folder: ShardFolder, the reader
every stage and the network's data loaders go through.
"""

from prn.pipeline.shards.folder import (
    MAX_OPEN_FILES,
    OpenFiles,
    ShardFolder,
    ShardFolders,
    open_shard,
    stored_outside,
)
from prn.pipeline.shards.manifest import MANIFEST, load_manifest, remove_unlisted_shards, write_manifest
from prn.pipeline.shards.schema import (
    AFLW2000_ONLY,
    ATTRIBUTES,
    AUGMENT_ONLY,
    BY_NAME,
    CROP_SIZE,
    DATASETS,
    FREE_SYMBOLS,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    UV_SIZE,
    Attribute,
    Dataset,
    schema_markdown,
)
from prn.pipeline.shards.settings import shard_attributes, shard_key, tool_version
from prn.pipeline.shards.writer import (
    SHARD_PATTERN,
    ShardWriter,
    checksum_matches,
    file_checksum,
    finished_record,
    read_record,
    recorded_checksum,
    shard_name,
    shard_record_path,
    write_shard,
)

__all__ = [
    "AFLW2000_ONLY", "ATTRIBUTES", "AUGMENT_ONLY", "BY_NAME", "CROP_SIZE", "DATASETS", "FREE_SYMBOLS", "MANIFEST",
    "MAX_OPEN_FILES", "READABLE_VERSIONS", "SCHEMA_VERSION", "SHARD_PATTERN", "UV_SIZE", "Attribute", "Dataset",
    "OpenFiles", "ShardFolder", "ShardFolders", "ShardWriter", "checksum_matches", "file_checksum", "finished_record",
    "load_manifest", "open_shard", "read_record", "recorded_checksum", "remove_unlisted_shards", "schema_markdown",
    "shard_attributes", "shard_key", "shard_name", "stored_outside", "shard_record_path", "tool_version",
    "write_manifest", "write_shard",
]
