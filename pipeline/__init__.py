"""`prn-prep`'s stages: datasets to HDF5 shards (build), new views (augment), fitting, the synthetic world.

`stage` runs any stage's chunks on Dask; `shards` owns the shard format;
`datasets` owns the 300W-LP / AFLW2000-3D file layouts; `synthetic` makes the
built-in morphable model and datasets in the real layouts.
"""
