"""`prn-predict --export-onnx`: a checkpoint's network as an ONNX file."""

import importlib.util
import warnings

import torch

from prn.model.checkpoint import load_trained
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError

ONNX_OPSET = 17


def export_onnx(checkpoint, path, opset=ONNX_OPSET):
    """Write the checkpoint's network as ONNX: input `image` (B, 3, S, S) in [0, 1], output `posmap`.

    `posmap` (B, 3, S, S) is the position map divided by 256 * 1.1, as the
    network predicts it; B is a dynamic axis. Uses torch's TorchScript-based
    exporter (dynamo=False), which needs no onnxscript and writes this opset.
    """
    if importlib.util.find_spec("onnx") is None:
        raise InputError("--export-onnx needs the onnx package: pip install 'prn-toolkit[onnx]'")
    network, config, _ = load_trained(checkpoint, "cpu")
    example = torch.zeros(1, 3, config.size, config.size)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and constant-folding notices
        torch.onnx.export(network, (example,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=["posmap"],
                          dynamic_axes={"image": {0: "batch"}, "posmap": {0: "batch"}})
