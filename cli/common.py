"""What every command shares: user errors as one line, the --model option."""

from pathlib import Path

import click

from prn.pipeline.stage import default_workers
from prn.rendering.builtin_model import builtin_model_dir
from prn.rendering.errors import InputError


class _UserErrors:
    """Turn InputError into a one-line message and exit status 1, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as error:
            raise click.ClickException(str(error)) from None


class Group(_UserErrors, click.Group):
    pass


class Command(_UserErrors, click.Command):
    pass


def model_option(function):
    """--model DIR: a model folder; default: the built-in synthetic model."""
    return click.option(
        "--model", "model_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
        help="Model folder (BFM.mat, BFM_UV.mat). Default: the built-in synthetic model, "
             "generated and cached on first use.")(function)


def resolve_model_dir(model_dir):
    return model_dir if model_dir is not None else builtin_model_dir()


def parallel_options(function):
    """--workers N / --scheduler ADDRESS: where a stage's tasks run."""
    function = click.option(
        "--scheduler", default=None, metavar="ADDRESS",
        help="Address of a running Dask scheduler (e.g. tcp://10.0.0.1:8786) to run on instead "
             "of local workers.")(function)
    return click.option(
        "--workers", type=click.IntRange(min=1), default=default_workers(), show_default="all cores",
        help="Local worker processes (a Dask cluster on 127.0.0.1); 1 runs in this process.")(function)
