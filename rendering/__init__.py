"""The geometry engine every stage stands on: morphable models, pose, crops, rasterizing, file formats.

Subpackages: `morphable` (the 3DMM folder, landmark fitting, UV assets),
`geometry` (pose, crops, head pose), `raster` (z-buffer rasterizer, shading,
texture, compositing), `files` (MATLAB, mesh files), `util` (errors, atomic
writes, process settings). It imports nothing from `pipeline`, `model` or `cli`.
"""
