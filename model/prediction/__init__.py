"""`prn-predict` and the Python API: face detection, the Predictor, output files, pictures."""
