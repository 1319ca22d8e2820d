"""Pixels from meshes: the Numba z-buffer rasterizer, shading, texture sampling, compositing."""
