"""`prn-prep synth`: render a 300W-LP or AFLW2000-3D look-alike dataset from a model folder.

Each sample's parameters come from its own random stream, seeded by
(seed, sample index), so a sample's bytes never depend on the number of
workers or on which other samples are made. Samples are drawn in fixed chunks
whose vertices are one matrix product.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prn.pipeline.datasets import SUBSETS_300WLP, SampleParams, roi_box, sample_fields, write_sample
from prn.pipeline.lock import output_lock
from prn.pipeline.provenance import claim_dataset
from prn.pipeline.stage import ChunkResult, chunks, run_chunks, worker_morphable_model
from prn.pipeline.synthetic.backgrounds import make_background
from prn.pipeline.synthetic.camera import photograph
from prn.pipeline.synthetic.dressing import dress
from prn.pipeline.synthetic.glasses import glasses
from prn.pipeline.synthetic.grooming import groom
from prn.pipeline.synthetic.lighting import draw_lighting, draw_studio_lighting
from prn.pipeline.synthetic.occluders import add_occluders
from prn.rendering.geometry.pose import image_vertices, rotation_matrices
from prn.rendering.morphable.uv_assets import full_triangles
from prn.rendering.raster.composite import composite
from prn.rendering.raster.rasterizer import render_colors
from prn.rendering.raster.shading import light_direction, shade, vertex_normals
from prn.rendering.raster.shadows import lit_fraction

CHUNK_SIZE = 16
JPEG_QUALITY = 90
# |yaw| bins of the AFLW2000-3D benchmark and their sample counts (of 2000).
AFLW_YAW_BINS = ((0.0, 30.0, 1312), (30.0, 60.0, 383), (60.0, 90.0, 305))
# Face width (jaw landmark 0 to 16) as a share of the image side, as in 300W-LP.
FACE_WIDTH_SHARE = 0.42
GOLDEN = (np.sqrt(5.0) - 1) / 2
TOP_FOLDERS = {"300w-lp": "300W_LP", "aflw2000": "AFLW2000"}
# What a sample shows, each world adding to the one before: "face" the model's
# face alone over a background; "head" adds cranium, hair, neck and clothed
# shoulders (`dressing`); "photo" harder light and camera effects (`camera`);
# "portrait" cast shadows, facial hair and make-up (`grooming`), glasses.
WORLDS = ("face", "head", "photo", "portrait")
# How far faces look up and down: "normal" pitch ~ N(0, 10) degrees clipped at +-40; "wide" gives half of the
# faces a pitch uniform over +-WIDE_PITCH instead (drawn from the sample's pose stream, so the rest is the same).
PITCH_SPREADS = ("normal", "wide")
WIDE_PITCH = 45.0
POSE_STREAM = 3
# Settings added after folders were made without them, and the value those folders have.
UNRECORDED = {"pitch": "normal"}


@dataclass(frozen=True)
class SynthSettings:
    face_model_dir: Path
    out_dir: Path
    layout: str              # "300w-lp" or "aflw2000"
    seed: int = 0
    image_size: int = 450
    occluder_probability: float = 0.2
    jpeg_quality: int = JPEG_QUALITY
    world: str = "photo"
    pitch: str = "normal"

    def recorded(self):
        """What the samples' bytes depend on besides the model and the sample index (count may grow)."""
        return {"layout": self.layout, "seed": self.seed, "image_size": self.image_size,
                "occluder_probability": self.occluder_probability, "jpeg_quality": self.jpeg_quality,
                "world": self.world, "pitch": self.pitch}


def shows(world, added):
    """Whether `world` shows what the world `added` adds (each world adds to the ones before it in WORLDS)."""
    return WORLDS.index(world) >= WORLDS.index(added)


def sample_rng(seed, index, stream=0):
    """A random stream of one sample: a function of (seed, index, stream) only.

    Stream 0 draws the face, the light and the background; stream 1 what the
    "head" and "photo" worlds add, stream 2 what "portrait" adds: each world
    shows the same person, light and camera as the worlds before it. Stream 3
    (POSE_STREAM) draws the "wide" pitch, so a wide sample is the normal one
    with another pitch, or the same sample.
    """
    key = [int(seed), int(index)] + ([int(stream)] if stream else [])
    return np.random.default_rng(np.random.SeedSequence(key))


def yaw_degrees(layout, seed, index, rng):
    """A yaw angle for the layout's spread.

    300W-LP: up to +-90, more near-frontal faces. AFLW2000-3D: the benchmark's
    |yaw| bins in the proportions 1312 / 383 / 305, chosen by a golden-ratio
    sequence over the index so that any run of samples keeps the proportions.
    """
    if layout == "300w-lp":
        if rng.random() < 0.5:
            return float(np.clip(rng.normal(0.0, 20.0), -89.0, 89.0))
        return float(rng.uniform(-89.0, 89.0))
    total = sum(count for _, _, count in AFLW_YAW_BINS)
    position = (seed * GOLDEN + (index + 0.5) * GOLDEN) % 1.0 * total
    for low, high, count in AFLW_YAW_BINS:
        if position < count:
            return float(rng.choice([-1.0, 1.0]) * rng.uniform(low + 1e-3, high))
        position -= count
    raise AssertionError("unreachable")


def draw_params(face_model, settings: SynthSettings, index, rng) -> SampleParams:
    """Coefficients, light, colour and angles of one sample (translation and scale come later)."""
    shape = np.clip(rng.standard_normal(face_model.n_shape), -3, 3) * face_model.shape_ev
    exp = np.clip(rng.standard_normal(face_model.n_exp), -2, 2) * face_model.exp_ev * 0.8
    tex = np.clip(rng.standard_normal(len(face_model.tex_ev)), -2, 2) * face_model.tex_ev
    illum, color = draw_lighting(rng)
    yaw = yaw_degrees(settings.layout, settings.seed, index, rng)
    pitch = np.clip(rng.normal(0.0, 10.0), -40.0, 40.0)
    if settings.pitch == "wide":
        pose_rng = sample_rng(settings.seed, index, POSE_STREAM)
        if pose_rng.random() < 0.5:
            pitch = pose_rng.uniform(-WIDE_PITCH, WIDE_PITCH)
    roll = np.clip(rng.normal(0.0, 8.0), -35.0, 35.0)
    pose = np.zeros(7)
    pose[:3] = np.radians([pitch, yaw, roll])
    return SampleParams(pose=pose, shape=shape, exp=exp, tex=tex, illum=illum, color=color)


def place_face(face_model, vertices, pose, image_size, rng):
    """Fill in the pose's scale and translation: a realistic face size, mostly central.

    vertices (n, 3) model units; pose (7,) with its angles set. Returns the
    pose rounded to float32 (as Pose_Para stores it).
    """
    landmarks = vertices[face_model.landmarks].astype(np.float64)
    jaw_width = np.linalg.norm(landmarks[16] - landmarks[0])
    scale = FACE_WIDTH_SHARE * image_size / jaw_width * np.exp(rng.normal(0.0, 0.12))
    spread = 0.2 if rng.random() < 0.1 else 0.06  # sometimes near or over the border
    center_x, center_y = np.clip(image_size / 2 + rng.normal(0.0, spread * image_size, 2),
                                 0.1 * image_size, 0.9 * image_size)
    rotated = scale * rotation_matrices(pose[:3]) @ landmarks.mean(0)
    pose = pose.copy()
    pose[3:6] = [center_x - rotated[0], (image_size - 1 - center_y) - rotated[1], -rotated[2]]
    pose[6] = scale
    return pose.astype(np.float32).astype(np.float64)


def render_meshes(meshes, illum, color, size, shadow_softness=None):
    """Shade and draw meshes [(placed vertices (n, 3), triangles (k, 3), albedo (n, 3))] in one z-buffer.

    shadow_softness: None, or the meshes cast shadows with a penumbra this many
    pixels wide (`shadows.lit_fraction`). Returns (size, size, 4) float32: RGB
    0-255 and coverage.
    """
    vertices, triangles, albedo, normals, offset = [], [], [], [], 0
    for placed, mesh_triangles, mesh_albedo in meshes:
        vertices.append(placed.astype(np.float32))
        triangles.append(mesh_triangles + offset)
        albedo.append(np.asarray(mesh_albedo, np.float32))
        normals.append(vertex_normals(placed, mesh_triangles))
        offset += len(placed)
    vertices, triangles = np.concatenate(vertices), np.concatenate(triangles).astype(np.int32)
    albedo, normals = np.concatenate(albedo), np.concatenate(normals)
    colors = shade(albedo, normals, illum, color)
    if shadow_softness is not None:
        lit = lit_fraction(vertices, triangles, light_direction(illum[6], illum[7]), shadow_softness)[:, None]
        ambient_only = np.array(illum, np.float64)
        ambient_only[3:6] = 0.0
        colors = lit * colors + (1.0 - lit) * shade(albedo, normals, ambient_only, color)
    with_coverage = np.concatenate([colors, np.ones((len(colors), 1), np.float32)], axis=1)
    return render_colors(vertices, triangles, with_coverage, size, size)


def render_image(face_model, triangles, placed, albedo, params, rng, settings, dressing=(), shadow_softness=None):
    """The sample's RGB uint8 image: shaded face (albedo (n, 3) RGB 0-255) and dressing ([(placed, triangles,
    albedo)]) over a background; cast shadows unless shadow_softness is None (`render_meshes`)."""
    size = settings.image_size
    rendered = render_meshes([(placed, triangles, albedo), *dressing], params.illum, params.color, size,
                             shadow_softness)
    image = composite(rendered[..., :3], rendered[..., 3] > 0, make_background(rng, size, size))
    landmarks = placed[face_model.landmarks, :2]
    box = (*landmarks.min(0), *landmarks.max(0))
    return add_occluders(image, rng, box, settings.occluder_probability)


def dressing_meshes(face_model, vertices, albedo, params, rng, size):
    """The placed cranium, hair, neck and shoulders of one sample: [(placed (m, 3), triangles, albedo)].

    vertices (n, 3) model units before the pose; albedo (n, 3) the face's, RGB 0-255 (its median is the skin's).
    """
    parts = dress(rng, vertices[face_model.landmarks].astype(np.float64), np.median(albedo, axis=0), params.pose[:3])
    return [(image_vertices(part.vertices, params.pose, size), part.triangles, part.albedo) for part in parts]


def portrait_additions(face_model, vertices, albedo, pose, rng, size):
    """What the portrait world adds to one sample: (albedo (n, 3) with facial hair and make-up, the placed glasses
    [(placed, triangles, albedo)], often none, and the shadows' penumbra in pixels).

    vertices (n, 3) model units before the pose (7,); albedo (n, 3) RGB 0-255.
    """
    landmarks = vertices[face_model.landmarks]
    albedo = groom(albedo, vertices, landmarks, rng)
    worn = [(image_vertices(part.vertices, pose, size), part.triangles, part.albedo)
            for part in glasses(rng, landmarks)]
    return albedo, worn, rng.uniform(0.5, 6.0)


def sample_paths(out_dir, layout, index):
    """(image path, landmark .mat path or None) of sample `index` in the real layout."""
    top = Path(out_dir) / TOP_FOLDERS[layout]
    if layout == "300w-lp":
        subset = SUBSETS_300WLP[index % len(SUBSETS_300WLP)]
        name = f"{subset}_synth_{index:06d}_0"
        return top / subset / f"{name}.jpg", top / "landmarks" / subset / f"{name}_pts.mat"
    return top / f"image{index:05d}.jpg", None


def synth_chunk(indices, settings: SynthSettings) -> ChunkResult:
    """Render and write the samples of one chunk, skipping finished ones."""
    result = ChunkResult()
    face_model = worker_morphable_model(settings.face_model_dir)
    triangles = full_triangles(face_model)
    todo = [i for i in indices
            if not sample_paths(settings.out_dir, settings.layout, i)[0].with_suffix(".mat").is_file()]
    result.skipped.extend(str(i) for i in indices if i not in todo)
    if not todo:
        return result
    # The vertices of a whole aligned block of CHUNK_SIZE indices are one matrix
    # product, whatever the count or what was resumed: the same bits every time.
    start = indices[0] - indices[0] % CHUNK_SIZE
    block = range(start, start + CHUNK_SIZE)
    assert all(i in block for i in indices), "chunks must be aligned to CHUNK_SIZE"
    rngs = {i: sample_rng(settings.seed, i) for i in block}
    drawn = {i: draw_params(face_model, settings, i, rngs[i]) for i in block}
    all_vertices = face_model.vertices(np.stack([drawn[i].shape for i in block]),
                                  np.stack([drawn[i].exp for i in block]))
    for row, index in enumerate(block):
        if index not in todo:
            continue
        params, rng = drawn[index], rngs[index]
        params.pose = place_face(face_model, all_vertices[row], params.pose, settings.image_size, rng)
        placed = image_vertices(all_vertices[row], params.pose, settings.image_size)
        albedo = face_model.colors(params.tex)
        dressing, world_rng, shadow_softness = (), sample_rng(settings.seed, index, stream=1), None
        if shows(settings.world, "head"):
            dressing = dressing_meshes(face_model, all_vertices[row], albedo, params, world_rng, settings.image_size)
        if shows(settings.world, "photo"):
            params.illum, params.color = draw_studio_lighting(world_rng)
        if shows(settings.world, "portrait"):
            albedo, worn, shadow_softness = portrait_additions(face_model, all_vertices[row], albedo, params.pose,
                                                               sample_rng(settings.seed, index, stream=2),
                                                               settings.image_size)
            dressing = [*dressing, *worn]
        image = render_image(face_model, triangles, placed, albedo, params, rng, settings, dressing, shadow_softness)
        if shows(settings.world, "photo"):
            image = photograph(image, world_rng)
        landmarks = placed[face_model.landmarks]
        fields = sample_fields(params, landmarks[:, :2].T, roi_box(landmarks[:, :2]))
        image_path, landmark_path = sample_paths(settings.out_dir, settings.layout, index)
        extra = []
        if landmark_path is not None:
            extra.append((landmark_path, {"pts_2d": landmarks[:, :2], "pts_3d": landmarks[:, :2]}))
        else:
            fields["pt3d_68"] = landmarks.T.astype(np.float32)
        write_sample(image_path, image, fields, extra, settings.jpeg_quality)
        result.written.append(image_path.stem)
    return result


def synthesize(settings: SynthSettings, count, workers=1, scheduler=None, progress=True):
    """Make samples 0 .. count-1 (resuming), Dask-parallel; returns the StageSummary.

    The output folder's prn-dataset.json records the model and settings; a
    folder made with others stops the run (InputError) before any sample.
    """
    worker_morphable_model(settings.face_model_dir)  # an unusable model folder fails here, once, with a clear error
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    with output_lock(settings.out_dir):
        claim_dataset(settings.out_dir, "synth", settings.face_model_dir, settings.recorded(),
                      folders=[TOP_FOLDERS[settings.layout]], unrecorded=UNRECORDED)
        tasks = chunks(list(range(count)), CHUNK_SIZE)
        return run_chunks(synth_chunk, tasks, settings, settings.out_dir, workers=workers, scheduler=scheduler,
                          description="synth", progress=progress)
