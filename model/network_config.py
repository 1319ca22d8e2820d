"""The network's configuration: what builds a PRNet, apart from how it is trained.

A checkpoint stores its run's whole settings; inference reads only these
four from them, so loading and running a network needs nothing of training.
"""

from dataclasses import dataclass

from prn.model.network import BACKBONES, PRNet
from prn.model.settings import Setting
from prn.rendering.util.errors import InputError


@dataclass(frozen=True)
class NetworkConfig:
    backbone: str = "resfcn"
    base: int = 16      # channels of the first layer; every layer scales with it
    kernel: int = 3
    size: int = 256     # input side, pixels (the network is fully convolutional: other sizes run too)


NETWORK_SETTINGS = {
    "backbone": Setting(str, choices=BACKBONES),
    "base": Setting(int, low=1),
    "kernel": Setting(int, low=2),
    "size": Setting(int, low=32, step=32),
}
# The settings that shape the network's weights (size does not): a checkpoint's weights fit a network with the same.
WEIGHT_SHAPING = ("backbone", "base", "kernel")


def network_config_of(values: dict) -> NetworkConfig:
    """The NetworkConfig of a dict of settings (other keys ignored, missing ones the defaults); InputError
    'NAME: problem' for an invalid value."""
    checked = {}
    for name, setting in NETWORK_SETTINGS.items():
        if name in values:
            try:
                checked[name] = setting.check(values[name])
            except ValueError as error:
                raise InputError(f"{name}: {error}") from None
    return NetworkConfig(**checked)


def make_network(config) -> PRNet:
    """The untrained PRNet a config describes (float32, on the CPU); config: a NetworkConfig, or any settings
    with its four fields (a TrainConfig)."""
    return PRNet(base=config.base, kernel=config.kernel, backbone=config.backbone, input_size=config.size)
