"""The synthetic world: a procedural morphable model, backgrounds, occluders, lighting, and `prn-prep synth`."""
