"""The network as ONNX: `prn-predict --export-onnx` writes it, `--engine onnxruntime` runs it."""

import importlib.util
import io
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
    trained = load_trained(checkpoint, "cpu")
    if importlib.util.find_spec("onnx") is None:
        raise InputError("--export-onnx needs the onnx package: pip install 'prn-toolkit[onnx]'")
    with atomic_path(path) as tmp:
        _export(trained.network, trained.config.size, str(tmp), opset)


def _export(network, size, target, opset=ONNX_OPSET):
    """torch.onnx.export of the network (input `image` (B, 3, size, size), output `posmap`) to a path or file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and constant-folding notices
        torch.onnx.export(network, (torch.zeros(1, 3, size, size),), target, dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=["posmap"],
                          dynamic_axes={"image": {0: "batch"}, "posmap": {0: "batch"}})


class OnnxRuntimeNetwork(torch.nn.Module):
    """A network run by ONNX Runtime on the CPU, called like the torch module it was exported from.

    (B, 3, S, S) float32 tensor in [0, 1] -> (B, 3, S, S) float32 tensor. Made
    with `onnx_runtime_network`; it has no parameters and nothing to train.
    """

    def __init__(self, session):
        super().__init__()
        self.session = session

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        (posmaps,) = self.session.run(None, {"image": images.contiguous().numpy()})
        return torch.from_numpy(posmaps)


def onnx_runtime_network(network, size, threads=None) -> OnnxRuntimeNetwork:
    """The eval-mode network exported in memory and loaded into an ONNX Runtime session (threads: torch's)."""
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        raise InputError("--engine onnxruntime needs ONNX Runtime: pip install 'prn-toolkit[onnx]'")
    import onnxruntime

    onnx_bytes = io.BytesIO()
    _export(network.eval(), size, onnx_bytes)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return OnnxRuntimeNetwork(onnxruntime.InferenceSession(onnx_bytes.getvalue(), options,
                                                           providers=["CPUExecutionProvider"]))
