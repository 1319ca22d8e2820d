"""`prn-predict` and the Python API (`Predictor`, `Face`): face detection, boxes, output files, pictures."""

from prn.model.prediction.predictor import Face, Predictor

__all__ = ["Face", "Predictor"]
