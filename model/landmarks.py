"""How the 68 landmarks and the dense face are read from predicted position maps: by a fit of the network's
morphable model, or from the map itself.

"fit" (the default) fits the morphable model the network was trained for to
each map's face points (rendering/morphable/map_fit.py) and takes the fitted
model's landmark vertices and its surface at the face pixels; "map" reads the
landmarks at uv_kpt_ind and the dense face at face_ind, of the map as given
or smoothed (inference.FaceSmoother). The model is
--fit-model DIR, else the built-in model when the network is of it
(generated and cached on first use), else a model folder that shards record
(the network's training data, the test shards) when it is still there and of
the network's model. docs/prediction.md, "Landmarks".
"""

from pathlib import Path

import numpy as np

from prn.model.uv_choice import builtin_fingerprint, short
from prn.pipeline.provenance import manifest_model
from prn.pipeline.shards import load_manifest
from prn.pipeline.synthetic.builtin import builtin_model_dir
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.map_fit import MapFitter
from prn.rendering.morphable.uv_assets import UVAssetFolder
from prn.rendering.util.errors import InputError

LANDMARK_READINGS = ("fit", "map")
DEFAULT_LANDMARKS = "fit"


class LandmarkReader:
    """Reads (B, 68, 3) landmarks and (B, f, 3) dense faces, crop pixels, from (B, S, S, 3) position maps laid out
    in `uv`."""

    def __init__(self, uv: UVAssetFolder, fitter: MapFitter | None = None, model_dir: Path | None = None):
        self.uv = uv
        self.fitter = fitter
        self.fitted_folder = None if model_dir is None else str(model_dir)   # as reports record it

    @property
    def reading(self) -> str:
        """"fit" or "map": how this reader reads."""
        return "map" if self.fitter is None else "fit"

    @classmethod
    def of(cls, reading, uv: UVAssetFolder, fingerprint, model_dir=None, recorded=()) -> "LandmarkReader":
        """The reader for `reading` ("fit" or "map") of maps of a network trained for model `fingerprint`.

        "fit" needs that model: model_dir (InputError when it is another
        model), else the built-in model when the fingerprint is its, else the
        first of the shard folders `recorded` whose manifest names a folder of
        that model that can still be loaded (recorded_model). Without one, the
        landmarks are read from the map (`reading` then says "map").
        """
        if reading not in LANDMARK_READINGS:
            raise InputError(f"landmarks must be one of {', '.join(LANDMARK_READINGS)}, got {reading!r}")
        if reading == "map":
            return cls(uv)
        if model_dir is not None:
            model = load_morphable_model(Path(model_dir))
            if fingerprint is not None and model.fingerprint != fingerprint:
                raise InputError(f"{model_dir}: model {short(model.fingerprint)}, but the network was trained for "
                                 f"model {short(fingerprint)}: give that model's folder to fit its maps")
        elif fingerprint is None:
            return cls(uv)
        elif fingerprint == builtin_fingerprint():
            model_dir = builtin_model_dir()
            model = load_morphable_model(model_dir)
        else:
            model_dir, model = recorded_model(recorded, fingerprint)
            if model is None:
                return cls(uv)
        return cls(uv, MapFitter(model, uv.face_ind, uv.size), model_dir)

    def __call__(self, posmaps) -> np.ndarray:
        """posmaps (B, S, S, 3) float32, crop pixels -> landmarks (B, 68, 3) float64, crop pixels."""
        posmaps = np.asarray(posmaps)
        if self.fitter is None:
            return posmaps[:, self.uv.kpt[1], self.uv.kpt[0]].astype(np.float64)
        return self.fitter.landmarks(posmaps)

    def read(self, posmaps, smooth=None) -> tuple:
        """posmaps (B, S, S, 3) float32, crop pixels -> (landmarks (B, 68, 3) float64, dense faces (B, f, 3)
        float32 at uv.face_ind), crop pixels: both of the fitted model, or read from the maps, the dense face
        from each map passed through `smooth` ((S, S, 3) -> (S, S, 3); None: as it is)."""
        posmaps = np.asarray(posmaps)
        if self.fitter is not None:
            fits = self.fitter.fit_many(posmaps) if len(posmaps) else []
            landmarks = np.stack([fitted.landmarks for fitted in fits]) if fits else np.zeros((0, 68, 3))
            return landmarks, self.fitter.surfaces(fits)
        surfaces = np.stack([smooth(posmap) for posmap in posmaps]) if smooth and len(posmaps) else posmaps
        dense = surfaces.reshape(len(posmaps), self.uv.size ** 2, 3)[:, self.uv.face_ind].astype(np.float32)
        return self(posmaps), dense


def recorded_model(shard_folders, fingerprint) -> tuple:
    """(folder, MorphableModel) of model `fingerprint` from the first of `shard_folders` whose manifest.json names
    a folder of it that loads; (None, None) when none does. Folders that are gone or unreadable are passed over:
    these are records of where data was made, not the user's request."""
    for folder in shard_folders:
        try:
            record = manifest_model(load_manifest(folder))
            if record is None or record.fingerprint != fingerprint:
                continue
            model = load_morphable_model(record.path)
        except InputError:
            continue
        if model.fingerprint == fingerprint:
            return record.path, model
    return None, None
