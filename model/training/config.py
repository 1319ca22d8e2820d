"""A training run's settings: TrainConfig, the presets, and the network a config describes."""

from dataclasses import dataclass, fields

from prn.model.network import PRNet
from prn.rendering.util.errors import InputError


@dataclass(frozen=True)
class TrainConfig:
    data: tuple
    val: str
    out: str
    uv_dir: str
    backbone: str = "resfcn"
    base: int = 16
    kernel: int = 3
    size: int = 256
    weights: str = "weight3"
    loss: str = "euclidean"
    epochs: int = 50
    batch_size: int = 16
    lr: float = 2e-4
    lr_halve_every: int = 5
    beta2: float = 0.999
    max_steps: int = 0
    seed: int = 0
    workers: int = 0
    augment: bool = True
    compile: bool = False
    max_minutes: float = 0.0


PRESETS = {
    # The paper: Adam, lr 2e-4 halved every 5 epochs, beta2 0.999, 50 epochs, batch 16.
    "paper": {"backbone": "resfcn", "base": 16, "kernel": 3, "size": 256, "epochs": 50, "batch_size": 16, "lr": 2e-4,
              "lr_halve_every": 5},
    # A narrower network at half resolution that learns within minutes on a CPU.
    "tiny": {"backbone": "resfcn", "base": 4, "kernel": 3, "size": 128, "epochs": 20, "batch_size": 16, "lr": 1e-3,
             "lr_halve_every": 8},
}
# The fields that shape the network's weights: a run resumes only with the same ones.
NETWORK_FIELDS = ("backbone", "base", "kernel")


def config_from(preset, **options):
    """A TrainConfig from a preset and explicit options (None means: the preset's value)."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset '{preset}', expected one of {', '.join(PRESETS)}")
    return config_of({**PRESETS[preset], **{k: v for k, v in options.items() if v is not None}})


def config_of(values):
    """A TrainConfig from a dict of all its fields (data: any sequence of paths); unknown keys are ignored."""
    known = {field.name for field in fields(TrainConfig)}
    values = {key: value for key, value in values.items() if key in known}
    values["data"] = tuple(str(folder) for folder in values.get("data", ()))
    return TrainConfig(**values)


def make_network(config: TrainConfig) -> PRNet:
    """The untrained PRNet a config describes (float32, on the CPU)."""
    return PRNet(base=config.base, kernel=config.kernel, backbone=config.backbone, input_size=config.size)
