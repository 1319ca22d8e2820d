"""Training data: a torch Dataset over `prn-prep build` / `augment` shard folders.

Targets
-------
A shard's `posmap` holds, per UV pixel, the crop position of that surface
point: x, y in crop pixels of the 256 x 256 crop and z in the same pixel units
with min 0. The network target is

    target = posmap / POSMAP_SCALE,   POSMAP_SCALE = 256 * 1.1

(the original PRN's constant), so an un-augmented face lies in [0, 1]: x, y
in [0, 256) and z below 1.1 * 256 in practice. Nothing is clipped: after an
augmentation that moves part of the face out of the crop (translation, scale
1.2, rotation) some x, y fall below 0 or above 256 / POSMAP_SCALE = 0.909 and
are kept as they are, i.e. they are positions outside the crop. A network with
a sigmoid output cannot reach values below 0 or above 1; the loss then pulls
it to the nearest bound for those points, which only happens at the face's
edges of strongly augmented samples.

Size
----
With `size` != 256 the image is resized to size x size (cv2.INTER_AREA) and
the position map is resampled to a size x size UV grid (cv2.INTER_NEAREST, so
that every target pixel is a real surface point and the face mask border never
blends positions with the zero background). The map's values are crop
coordinates, so they are scaled by size / 256 to address the resized crop, and
then divided by POSMAP_SCALE * size / 256: the two factors cancel, and the
target is `posmap / POSMAP_SCALE` at every size. To read pixel coordinates of
a size-S crop from a target (or a prediction): `target * POSMAP_SCALE * S / 256`.
(cv2.resize places pixel centres at (i + 0.5) * 256 / S - 0.5; the plain
scaling above ignores that sub-pixel offset, at most 0.5 * (256 / S - 1) crop
pixels of the 256 crop; it is the convention of the original PRN as well.)

Augmentation (augment=True), drawn from np.random.default_rng([seed, epoch, index])
------------------------------------------------------------------------------------
One 2 x 3 similarity M about the crop centre (127.5, 127.5), in 256-crop pixels:
in-plane rotation uniform in +-45 degrees (ROTATION_DEG), scale uniform in
0.8-1.2 (the PRN paper's scale noise, SCALE_RANGE) and translation uniform in
+-10 % of the crop per axis (TRANSLATION).

* The image is warped SPATIALLY with M (cv2.warpAffine, bilinear, black border).
* The position map is NOT warped: it is indexed by UV, each pixel is a fixed
  point of the face surface, not an image location. Only its VALUES change:
  (x, y) -> M @ (x, y, 1) and z -> z * scale. So the landmark read at
  uv_kpt_ind still lands on the same image feature of the warped image.
  UV pixels outside the face (all three values exactly 0) stay 0.

With probability `detector_framing` (0 by default, when nothing more is
drawn) the crop is first reframed as `prn-predict` frames a box of the 68
landmarks (docs/formats.md section 6, "Inference crops"): the similarity F
from the build's crop (1.5 old about the landmarks' centre) to the detector
rule's crop of the same landmark box (1.58 old, centre 0.14 old lower), so
M becomes M F. Without it the network sees the face of a user's crop smaller
and higher than most of its training faces, and measurably does worse on
it (docs/training.md, "Framing").

Then photometric noise on the image only: per-channel gain uniform in 0.6-1.4
(the original PRN training's colour jitter; GAIN_RANGE), clipped to [0, 1], and
with probability OCCLUDE_PROBABILITY a random rectangle (each side 10-50 % of
the image, anywhere inside it) filled with uniform noise or one flat random
colour (half the time each).

Samples are a function of (seed, epoch, index) only, so any worker count and
any order give the same data.
"""

import itertools
import os
import signal
import threading
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler, SequentialSampler

from prn.model.network import POSMAP_SCALE
from prn.pipeline.face_match import FaceModelClaim, manifest_claim, resolve
from prn.pipeline.shards import ShardFolders
from prn.rendering.geometry.crop import (
    CROP_CENTER,
    CROP_SIZE,
    TRAIN_CROP_SCALE,
    crop_center,
    crop_transform,
    detector_crop,
)
from prn.rendering.util.errors import SHORT_OF_MEMORY, HelperDied, InputError

ROTATION_DEG = 45.0          # in-plane rotation, uniform in [-45, 45] degrees
SCALE_RANGE = (0.8, 1.2)     # PRN paper's scale noise
TRANSLATION = 0.1            # uniform in +-10 % of the crop, per axis
GAIN_RANGE = (0.6, 1.4)      # per-channel colour gain (original PRN training)
OCCLUDE_PROBABILITY = 0.3    # probability of one occluding rectangle
OCCLUDE_SIDE = (0.1, 0.5)    # rectangle side, fraction of the image side


def _as_folders(folders):
    if isinstance(folders, (str, os.PathLike)):
        return [Path(folders)]
    return [Path(folder) for folder in folders]


def detector_framing_similarity(side=CROP_SIZE) -> np.ndarray:
    """3 x 3 float64: from the build's crop of a landmark box to the detector rule's crop of the same box, in
    crop pixels of a side x side crop (the same for every box, since both crops scale with it)."""
    unit_box = (-0.5, -0.5, 0.5, 0.5)          # a landmark box of mean side 1 about the origin
    built = crop_transform(0.0, 0.0, TRAIN_CROP_SCALE, out_size=side)
    return crop_transform(*detector_crop(unit_box), out_size=side) @ np.linalg.inv(built)


def similarity(angle_deg, scale, shift, center=CROP_CENTER):
    """2 x 3 float64: rotate by angle_deg and scale about `center`, then move by shift (dx, dy)."""
    theta = np.deg2rad(angle_deg)
    cos, sin = scale * np.cos(theta), scale * np.sin(theta)
    linear = np.array([[cos, -sin], [sin, cos]])
    offset = np.array([center, center]) + np.asarray(shift, dtype=np.float64) - linear @ [center, center]
    return np.hstack([linear, offset[:, None]])


class ShardDataset(Dataset):
    """Samples of one or more shard folders, in manifest order (folder, shard, row).

    Only the manifests are read on construction; HDF5 files are opened lazily per
    process in __getitem__ through one prn.pipeline.shards.ShardFolders (a forked or
    unpickled copy opens its own).

    __getitem__ returns {"image": (3, S, S) float32 in [0, 1] RGB,
    "target": (3, S, S) float32 = posmap / POSMAP_SCALE (see the module doc),
    "affine": (2, 3) float32 the augmentation similarity in 256-crop pixels
    (identity without augmentation), "index": int64}.
    """

    def __init__(self, folders, size=CROP_SIZE, augment=True, seed=0, detector_framing=0.0):
        self.folders = _as_folders(folders)
        self.detector_framing = float(detector_framing)
        if not self.folders:
            raise InputError("no shard folder given")
        self.size = int(size)
        if self.size < 1:
            raise InputError(f"size must be positive, got {size}")
        self.augment = bool(augment)
        self.seed = int(seed)
        self.epoch = 0
        self.index = ShardFolders(self.folders)
        self.uv_size = self.index.folders[0].manifest.get("uv_size")
        for path, folder in zip(self.folders, self.index.folders):
            if len(folder) == 0:
                raise InputError(f"{path}: no samples in manifest.json")
            if folder.manifest.get("uv_size") != self.uv_size:
                raise InputError(f"{path}: maps of {folder.manifest.get('uv_size')} px, but {self.folders[0]} has "
                                 f"maps of {self.uv_size} px")
        claims = [manifest_claim(folder.manifest, f"the shards {path}")
                  for path, folder in zip(self.folders, self.index.folders)]
        self.face_model = FaceModelClaim(f"the shards {' '.join(map(str, self.folders))}",
                                         resolve(claims).fingerprint, claims[0].folder)

    def __len__(self):
        return len(self.index)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def location(self, index):
        """(shard path, row) of sample `index`."""
        folder, shard, row = self.index.locate(int(index))
        return str(folder.paths[shard]), row

    def close(self):
        self.index.close()

    def read(self, index):
        """The raw (image uint8 (256, 256, 3), posmap (256, 256, 3)) of sample `index`."""
        folder, shard, row = self.index.locate(int(index))
        sample = folder.read(shard, ("image", "posmap"), row)
        return sample["image"], sample["posmap"]

    def __getitem__(self, index):
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(index)
        image, posmap = self.read(index)
        posmap = posmap.astype(np.float32)
        affine = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float64)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, posmap, affine = augment_sample(image, posmap, rng, self.detector_framing)
        else:
            image = image.astype(np.float32) * (1 / 255)
        if self.size != image.shape[0]:
            image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        if self.size != posmap.shape[0]:
            posmap = cv2.resize(posmap, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        # values * (size / 256) / (POSMAP_SCALE * size / 256) == values / POSMAP_SCALE
        posmap *= 1 / POSMAP_SCALE
        return {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                "target": torch.from_numpy(np.ascontiguousarray(posmap.transpose(2, 0, 1))),
                "affine": torch.from_numpy(affine.astype(np.float32)),
                "index": torch.tensor(index, dtype=torch.int64)}


def draw_augmentation(rng, side=CROP_SIZE, detector_framing=0.0):
    """The random parameters of one sample, always drawn in the same order (the framing's draw last, and only
    when its probability is above 0, so that other runs draw what they always drew)."""
    angle = rng.uniform(-ROTATION_DEG, ROTATION_DEG)
    scale = rng.uniform(*SCALE_RANGE)
    shift = rng.uniform(-TRANSLATION, TRANSLATION, size=2) * side
    gain = rng.uniform(*GAIN_RANGE, size=3).astype(np.float32)
    occlude = rng.random() < OCCLUDE_PROBABILITY
    sides = (rng.uniform(*OCCLUDE_SIDE, size=2) * side).astype(int).clip(1, side)
    corner = (rng.random(2) * (side - sides + 1)).astype(int)
    noise = rng.random() < 0.5
    colour = rng.random(3).astype(np.float32)
    framed = detector_framing > 0 and rng.random() < detector_framing
    return angle, scale, shift, gain, occlude, sides, corner, noise, colour, framed


def augment_sample(image, posmap, rng, detector_framing=0.0):
    """(image float32 [0, 1] warped, posmap float32 with transformed values, affine 2 x 3).

    image: (H, W, 3) uint8 crop; posmap: (U, U, 3) float32 UV map of crop
    coordinates of the same crop. The map keeps its UV layout (see the module doc).
    detector_framing: the probability of reframing the crop as prn-predict frames a landmark box.
    """
    side = image.shape[0]
    angle, scale, shift, gain, occlude, sides, corner, noise, colour, framed = \
        draw_augmentation(rng, side, detector_framing)
    affine = similarity(angle, scale, shift, center=crop_center(side))
    if framed:
        framing = detector_framing_similarity(side)
        affine = affine @ framing
        scale *= framing[0, 0]
    warped = cv2.warpAffine(image, affine, (image.shape[1], side), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = warped.astype(np.float32)
    out *= gain * (1 / 255)
    np.clip(out, 0, 1, out=out)
    if occlude:
        (w, h), (x, y) = sides, corner
        if noise:
            out[y:y + h, x:x + w] = rng.random((h, w, 3), dtype=np.float32)
        else:
            out[y:y + h, x:x + w] = colour
    background = ~posmap.any(axis=2)
    moved = np.empty_like(posmap)
    linear = affine[:, :2].astype(np.float32)
    moved[..., :2] = posmap[..., :2] @ linear.T + affine[:, 2].astype(np.float32)
    moved[..., 2] = posmap[..., 2] * np.float32(scale)
    moved[background] = 0
    return out, moved, affine


def _loader_seed(seed, epoch):
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def make_loader(dataset, batch_size, shuffle=True, workers=0, seed=0, epoch=0, distributed=False,
                drop_last=False, skip_batches=0):
    """A DataLoader for one epoch: call it again each epoch (it sets the dataset's and sampler's epoch).

    Shuffling is over all samples of all shards, from a torch.Generator seeded from
    (seed, epoch); with distributed=True a DistributedSampler (seed, set_epoch) splits
    the samples across ranks. skip_batches: leave out the epoch's first batches (of
    this rank), for an epoch resumed where it stopped; the others are the same
    batches. pin_memory only when CUDA is available; persistent workers when
    workers > 0 (they live as long as this loader, so build a new loader per epoch:
    a worker holds its own copy of the dataset and its epoch). Workers ignore
    SIGTERM and SIGINT: the training process stops the run after its step.
    """
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    generator = torch.Generator()
    generator.manual_seed(_loader_seed(seed, epoch))
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=int(seed), drop_last=drop_last)
        sampler.set_epoch(int(epoch))
    else:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    if skip_batches:
        sampler = Skipping(sampler, skip_batches * batch_size)
    options = {}
    if workers > 0:
        # No cv2.setNumThreads in a worker_init_fn: after fork it deadlocks OpenCV's pool.
        options = {"persistent_workers": True, "worker_init_fn": ignore_stop_signals}
    return ShardLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, generator=generator,
                       pin_memory=torch.cuda.is_available(), drop_last=drop_last, **options)


class Skipping(Sampler):
    """The indices of `sampler` after its first `skip`, drawn as `sampler` draws them (its order unchanged)."""

    def __init__(self, sampler, skip):
        self.sampler, self.skip = sampler, int(skip)

    def __len__(self):
        return max(len(self.sampler) - self.skip, 0)

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)


def ignore_stop_signals(worker_id):
    """A DataLoader worker's start: it ignores SIGINT, and SIGTERM unless its training process sends it.

    A batch system signals every process of a job, and Ctrl-C the terminal's
    whole process group, but the training process stops the run after its step
    and then ends its workers. SIGTERM from the training process (torch ending
    a worker that did not stop) ends the worker at once, as torch's own handler
    does.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # for this thread and those it starts
    threading.Thread(target=_end_on_sigterm_from, args=(os.getppid(),), daemon=True).start()


def _end_on_sigterm_from(parent):
    while True:
        if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
            os._exit(0)


class ShardLoader(DataLoader):
    """A DataLoader whose worker processes' InputErrors reach the caller as their one line, as without workers.

    torch re-raises an error of a worker as the same type with the worker's
    whole traceback as its message; the line the worker raised is its last.
    torch's warning of more workers than cores (at every epoch) is left out:
    training notes it once.
    """

    def check_worker_number_rationality(self):
        pass

    def __iter__(self):
        batches = super().__iter__()
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except InputError as error:
                raise InputError(worker_line(error)) from None
            except Exception:
                # A killed worker surfaces as whatever the main process was doing with it (a reset connection,
                # torch's own RuntimeError): name the death itself.
                for worker in getattr(batches, "_workers", ()):
                    if not worker.is_alive() and worker.exitcode:
                        raise HelperDied(f"a data loader process died (pid {worker.pid}, {ended(worker.exitcode)}); "
                                         f"{SHORT_OF_MEMORY}") from None
                raise
            yield batch


def ended(exitcode: int) -> str:
    """How a process ended, from its multiprocessing exit code: 'killed by SIGKILL', 'exit status 3'."""
    if exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


def worker_line(error) -> str:
    """The message an error had in its DataLoader worker (itself when it was not raised in one)."""
    lines = str(error).strip().splitlines()
    if len(lines) > 1 and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]:
        return lines[-1].split(": ", 1)[-1]
    return str(error)
