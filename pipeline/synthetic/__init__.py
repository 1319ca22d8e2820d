"""The synthetic world, for running without the real data sets.

The morphable model: `face_model` (entry: `make_synthetic_model`) built from
`shapes`, `features`, `head`, `grid`, `landmarks`, `bases` and `albedo`, and
cached per machine by `builtin`. The images: `backgrounds` (with their
`layers` and the `drawing` primitives shared with `occluders`), `lighting`,
and the `prn-prep synth` stage in `synth`.
"""
