"""Geometry: the morphable model, pose transforms, the rasterizer, UV assets."""

from .errors import InputError
from .morphable_model import MorphableModel, load_model
from .rasterizer import (PixelTable, Rasterization, gather, interpolate, pixel_table, rasterize,
                         render_colors, vertex_visibility)
from .transforms import angles_from_rotations, image_vertices, place_vertices, rotation_matrices

__all__ = [
    "InputError", "MorphableModel", "load_model", "PixelTable", "Rasterization", "gather",
    "interpolate", "pixel_table", "rasterize", "render_colors", "vertex_visibility",
    "angles_from_rotations", "image_vertices", "place_vertices", "rotation_matrices",
]
