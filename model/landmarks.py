"""How the 68 landmarks and the dense face are read from predicted position maps: by a fit of the network's
face model (its 3D morphable model), or from the map itself.

"fit" (the default) fits the face model the network was trained for to
each map's face points (rendering/morphable/map_fit.py) and takes the fitted
model's landmark vertices and its surface at the face pixels; "map" reads the
landmarks at uv_kpt_ind and the dense face at face_ind, of the map as given
or smoothed (inference.FaceSmoother). Which face model folder is fitted is
the resolver's choice (pipeline/face_match.py: --fit-model DIR, else one the
shards record, else the built-in model when it is the network's); without
one the landmarks are read from the map. docs/prediction.md, "Landmarks".
"""

from pathlib import Path

import numpy as np

from prn.pipeline.stage import worker_morphable_model
from prn.rendering.morphable.map_fit import MapFitter
from prn.rendering.morphable.uv_assets import UVAssetFolder
from prn.rendering.util.errors import InputError

LANDMARK_READINGS = ("fit", "map")
DEFAULT_LANDMARKS = "fit"


def check_reading(reading):
    """InputError (one line) unless `reading` is one of LANDMARK_READINGS."""
    if reading not in LANDMARK_READINGS:
        raise InputError(f"landmarks must be one of {', '.join(LANDMARK_READINGS)}, got {reading!r}")


class LandmarkReader:
    """Reads (B, 68, 3) landmarks and (B, f, 3) dense faces, crop pixels, from (B, S, S, 3) position maps laid out
    in `uv`."""

    def __init__(self, uv: UVAssetFolder, fitter: MapFitter | None = None, face_model_dir: Path | None = None):
        self.uv = uv
        self.fitter = fitter
        self.fitted_folder = None if face_model_dir is None else str(face_model_dir)   # as reports record it

    @property
    def reading(self) -> str:
        """"fit" or "map": how this reader reads."""
        return "map" if self.fitter is None else "fit"

    @classmethod
    def of(cls, reading, uv: UVAssetFolder, face_model_dir=None) -> "LandmarkReader":
        """The reader for `reading` ("fit" or "map"): "fit" fits the face model at face_model_dir (loaded once
        per process), and reads from the map when there is none (`reading` then says "map")."""
        check_reading(reading)
        if reading == "map" or face_model_dir is None:
            return cls(uv)
        face_model = worker_morphable_model(Path(face_model_dir))
        return cls(uv, MapFitter(face_model, uv.face_ind, uv.size), face_model_dir)

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
