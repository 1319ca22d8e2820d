"""A training run's settings: TrainConfig, each setting's valid values, the presets.

SETTINGS is the one definition of what each setting accepts: `prn-train`'s
options, a `--config` file, the presets and a checkpoint's stored config are
all checked against it.
"""

from dataclasses import dataclass, fields

from prn.model.loss import LOSSES
from prn.model.network_config import NETWORK_SETTINGS
from prn.model.settings import Setting
from prn.rendering.morphable.uv_assets import WEIGHT_PRESETS
from prn.rendering.util.errors import InputError


@dataclass(frozen=True)
class TrainConfig:
    data: tuple
    val: str
    out: str
    uv_dir: str | None = None    # None: the built-in model's UV assets, when they are the shards' model's
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
    lr_halve_steps: int = 0        # > 0: halve the rate every this many steps instead of every lr_halve_every epochs
    beta2: float = 0.999
    max_steps: int = 0
    seed: int = 0
    workers: int = 0
    augment: bool = True
    detector_framing: float = 0.0  # probability of framing a training crop as prn-predict frames a landmark box
    compile: bool = False
    max_minutes: float = 0.0
    checkpoint_every: int = 0      # steps between saves of last.pt within epochs (0: at epoch ends only)
    checkpoint_minutes: float = 0.0  # minutes between saves of last.pt within epochs (0: no timed saves)
    init: str | None = None        # a checkpoint whose weights the network starts from (None: random)


SETTINGS = {
    **NETWORK_SETTINGS,
    "weights": Setting(str, choices=tuple(WEIGHT_PRESETS)),
    "loss": Setting(str, choices=LOSSES),
    "epochs": Setting(int, low=1),
    "batch_size": Setting(int, low=1),
    "lr": Setting(float, low=0, above_low=True),
    "lr_halve_every": Setting(int, low=1),
    "lr_halve_steps": Setting(int, low=0),
    "beta2": Setting(float, low=0, high=1),
    "max_steps": Setting(int, low=0),
    "seed": Setting(int, low=0, high=2 ** 32),
    "workers": Setting(int, low=0),
    "augment": Setting(bool),
    "detector_framing": Setting(float, low=0, high=1, high_inclusive=True),
    "compile": Setting(bool),
    "max_minutes": Setting(float, low=0),
    "checkpoint_every": Setting(int, low=0),
    "checkpoint_minutes": Setting(float, low=0),
}

PRESETS = {
    # The paper: Adam, lr 2e-4 halved every 5 epochs, beta2 0.999, 50 epochs, batch 16.
    "paper": {"backbone": "resfcn", "base": 16, "kernel": 3, "size": 256, "epochs": 50, "batch_size": 16, "lr": 2e-4,
              "lr_halve_every": 5},
    # A network 4 times narrower at 96 px (3/8 of the resolution) that learns within minutes on a CPU.
    "tiny": {"backbone": "resfcn", "base": 4, "kernel": 3, "size": 96, "epochs": 20, "batch_size": 16, "lr": 1e-3,
             "lr_halve_every": 8},
    # Half the paper's width at 128 px: the shipped network (docs/training.md), about 2 hours on 2 CPU cores.
    "small": {"backbone": "resfcn", "base": 8, "kernel": 3, "size": 128, "epochs": 20, "batch_size": 16, "lr": 1e-3,
              "lr_halve_every": 8},
}


def config_from(preset, **options):
    """A TrainConfig from a preset and explicit options (None means: the preset's value)."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset '{preset}', expected one of {', '.join(PRESETS)}")
    return config_of({**PRESETS[preset], **{k: v for k, v in options.items() if v is not None}})


def config_of(values):
    """A TrainConfig from a dict of its fields (data: any sequence of paths); unknown keys are ignored.

    InputError naming the first setting whose value is not valid (SETTINGS).
    """
    known = {field.name for field in fields(TrainConfig)}
    values = {"data": (), **values}
    return TrainConfig(**{key: check_setting(key, value) for key, value in values.items() if key in known})


def check_setting(name, value):
    """A TrainConfig field's value, normalised (floats, str folders, data a tuple); InputError 'NAME: problem'."""
    if name in SETTINGS:
        try:
            return SETTINGS[name].check(value)
        except ValueError as error:
            raise InputError(f"{name}: {error}") from None
    if name == "data":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not all(map(_is_folder, value)):
            raise InputError(f"data: must be a list of folders, got {value!r}")
        return tuple(str(folder) for folder in value)
    if name == "init":
        if not (value is None or _is_folder(value)):
            raise InputError(f"init: must be a checkpoint file, got {value!r}")
    elif not (_is_folder(value) or (name == "uv_dir" and value is None)):
        raise InputError(f"{name}: must be a folder, got {value!r}")
    return None if value is None else str(value)


def _is_folder(value) -> bool:
    return isinstance(value, str) or hasattr(value, "__fspath__")


def file_settings(values, path) -> dict:
    """The settings of a `--config` JSON object, checked; InputError naming `path` and the setting.

    Keys: TrainConfig's fields and `preset`; `data` may be one folder or a list.
    """
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a JSON object of settings, got {type(values).__name__}")
    allowed = ["preset", *(field.name for field in fields(TrainConfig))]
    checked = {}
    for key, value in values.items():
        if key not in allowed:
            raise InputError(f"{path}: unknown setting '{key}' (known: {', '.join(allowed)})")
        if key == "preset":
            if value not in PRESETS:
                raise InputError(f"{path}: preset: must be one of {', '.join(PRESETS)}, got {value!r}")
            checked[key] = value
            continue
        try:
            checked[key] = check_setting(key, [value] if key == "data" and isinstance(value, str) else value)
        except InputError as error:
            raise InputError(f"{path}: {error}") from None
    return checked
