"""The 3D morphable model: its folder in the BFM layout, landmark fitting, and its UV assets."""
