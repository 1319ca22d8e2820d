"""Generic file formats: MATLAB v5 files, triangle meshes (OBJ, PLY), images."""
