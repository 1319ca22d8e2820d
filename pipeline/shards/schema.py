"""The shard schema: one table of the datasets, one of the file attributes, and the sizes they use.

The writer's dataset order and empty shapes, verify_shards' checks and the
table of docs/formats.md (schema_markdown) all come from these tables.
"""

from dataclasses import dataclass

from prn.rendering.geometry.crop import CROP_SIZE

# 2: shard checksums are xxh3-128 ("checksum": "xxh3_128:<hex>"), 9x faster to compute than
# version 1's sha256 ("sha256": "<hex>"); the HDF5 content is otherwise the same. Readers take both.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
UV_SIZE = 256                   # position map side, pixels, as build writes it ("S"; a file's uv_size attribute)
STRING = "utf-8"                # the dtype of string datasets in the table
AFLW2000_ONLY = "layout aflw2000"
AUGMENT_ONLY = "augment output"
FREE_SYMBOLS = ("K", "E")

# Shape symbols: C and S are sizes; K and E any length, the same in every shard of a folder.
SYMBOLS = {
    "C": f"crop side, CROP_SIZE = {CROP_SIZE}",
    "S": f"position map side, the file's uv_size (UV_SIZE = {UV_SIZE})",
    "K": "shape coefficients of the morphable model",
    "E": "expression coefficients of the morphable model",
}


@dataclass(frozen=True)
class Dataset:
    """One HDF5 dataset of N samples: shape after N, allowed dtypes (the writer's default first), content."""

    name: str
    shape: tuple                # ints and SYMBOLS keys; () for strings
    dtypes: tuple               # numpy dtype names, or (STRING,)
    meaning: str
    only: str = ""              # "" in every shard, else when present: AFLW2000_ONLY or AUGMENT_ONLY
    chosen_by: str = ""         # the manifest setting that picks one of `dtypes`

    @property
    def optional(self):
        return bool(self.only)

    @property
    def is_string(self):
        return self.dtypes == (STRING,)

    @property
    def free(self):
        """Whether a dimension is K or E, a length the table does not fix."""
        return any(dim in FREE_SYMBOLS for dim in self.shape)

    def dims(self, uv_size):
        """The shape after N with C and S as numbers; K and E stay symbols."""
        sizes = {"C": CROP_SIZE, "S": uv_size}
        return tuple(sizes.get(dim, dim) for dim in self.shape)


DATASETS = (
    Dataset("image", ("C", "C", 3), ("uint8",), "RGB crop"),
    Dataset("posmap", ("S", "S", 3), ("float16", "float32"),
            "UV position map (section 6): x, y in crop pixels, z in crop pixel units with min 0; zero outside "
            "the face",
            chosen_by="posmap_dtype"),
    Dataset("kpt68", (68, 3), ("float32",), "the 68 landmarks (section 1) in crop pixels, x, y, z as in `posmap`"),
    Dataset("tform", (3, 3), ("float32",), "T of section 6: original image pixels to crop pixels, homogeneous"),
    Dataset("pose", (7,), ("float32",),
            "Pose_Para (section 3): pitch, yaw, roll in radians, tx, ty, tz, s"),
    Dataset("shape_params", ("K",), ("float32",), "shape coefficients, zero-padded to the model's K"),
    Dataset("exp_params", ("E",), ("float32",), "expression coefficients, zero-padded to the model's E"),
    Dataset("image_size", (2,), ("int32",), "original image (height, width), pixels"),
    Dataset("name", (), (STRING,), "sample name relative to the source folder, unique in a folder"),
    Dataset("subset", (), (STRING,), "300W-LP subset folder, or AFLW2000"),
    Dataset("pt3d_68", (68, 3), ("float32",), "AFLW2000-3D's ground-truth landmarks in original image pixels",
            only=AFLW2000_ONLY),
    Dataset("rotation_deg", (3,), ("float32",), "(pitch, yaw, roll) added to the source pose, degrees",
            only=AUGMENT_ONLY),
    Dataset("source_name", (), (STRING,), "name of the source sample the view was made from", only=AUGMENT_ONLY),
)
BY_NAME = {field.name: field for field in DATASETS}


@dataclass(frozen=True)
class Attribute:
    """One file attribute of every shard."""

    name: str
    meaning: str
    setting: bool = False       # must equal the manifest's settings entry of the same name


ATTRIBUTES = (
    Attribute("schema_version", f"SCHEMA_VERSION ({SCHEMA_VERSION}), as in the manifest"),
    Attribute("model_fingerprint", "fingerprint of the morphable model (section 2), as in the manifest"),
    Attribute("uv_size", "S, as in the manifest"),
    Attribute("seed", "seed of the crop jitter (and of augment's random rotations)", setting=True),
    Attribute("jitter", "whether the crops were jittered", setting=True),
    Attribute("layout", "300w-lp or aflw2000", setting=True),
    Attribute("tool_version", "prn-toolkit version that wrote the file"),
)


def _shape_text(field):
    return "(N)" if field.is_string else "(" + ", ".join(["N"] + [str(dim) for dim in field.shape]) + ")"


def schema_markdown() -> str:
    """The schema tables as Markdown (docs/formats.md, section 8)."""
    lines = [f"Shard schema version {SCHEMA_VERSION}; N samples per shard file. Shape symbols:", ""]
    lines += [f"* {symbol}: {meaning}" for symbol, meaning in SYMBOLS.items()]
    lines += ["", "| dataset | shape | dtype | present | content |", "| --- | --- | --- | --- | --- |"]
    for field in DATASETS:
        dtypes = "UTF-8 string" if field.is_string else " or ".join(field.dtypes)
        dtypes += f" (setting `{field.chosen_by}`)" if field.chosen_by else ""
        lines.append(f"| `{field.name}` | {_shape_text(field)} | {dtypes} | {field.only or 'always'} "
                     f"| {field.meaning} |")
    lines += ["", "| attribute | content |", "| --- | --- |"]
    lines += [f"| `{attribute.name}` | {attribute.meaning}"
              f"{', as in the manifest settings' if attribute.setting else ''} |" for attribute in ATTRIBUTES]
    return "\n".join(lines) + "\n"
