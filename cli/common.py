"""What every command shares: user errors as one line, the --model options, where stages run."""

import functools
from pathlib import Path

import click
from click.core import ParameterSource

from prn.pipeline.face_match import FACE_MODEL_ENV, FaceModelClaim, resolve
from prn.pipeline.stage import CLUSTER_KINDS, Cluster, job_script
from prn.pipeline.synthetic.builtin import builtin_face_model_dir
from prn.rendering.util.cores import usable_cores
from prn.rendering.util.errors import InputError, helper_death_line, os_error_line

INTERRUPTED = 130   # the shell's status for a program stopped by Ctrl-C (128 + SIGINT)


class _UserErrors:
    """Turn InputError, OS errors (read-only folder, full disk ...), a diverged training and a killed helper
    process into one line, exit 1;
    Ctrl-C into one line, exit 130 (click would print "Aborted!" and exit 1, as for an error)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            raise click.ClickException(os_error_line(error)) from None
        except FloatingPointError as error:  # training diverged: the message names the last good checkpoint
            raise click.ClickException(str(error)) from None
        except RuntimeError as error:
            line = helper_death_line(error)
            if line is None:
                raise
            raise click.ClickException(line) from None
        except KeyboardInterrupt:
            click.echo(f"{ctx.command_path}: interrupted (Ctrl-C)", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None


class Group(_UserErrors, click.Group):
    pass


class Command(_UserErrors, click.Command):
    pass


class DefaultGroup(Group):
    """A group whose first command runs when no command name is given.

    `prn-train --data ...` runs the default command and `prn-train ablation ...`
    the named one; `--help` without a command name shows the default's help.
    """

    def parse_args(self, ctx, args):
        if not args or args[0] not in self.commands:
            args = [next(iter(self.commands))] + list(args)
        return super().parse_args(ctx, args)


def model_option(function):
    """--model DIR for commands that make data: default $PRN_MODEL_DIR, else the built-in synthetic model."""
    return click.option(
        "--model", "face_model_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
        envvar=FACE_MODEL_ENV,
        help=f"Face model folder: the 3D morphable model (BFM.mat, BFM_UV.mat). Default: ${FACE_MODEL_ENV}, else "
             "the built-in synthetic face model, generated and cached on first use.")(function)


def recorded_model_option(function):
    """--model DIR for commands that read data: default the face model the data records."""
    return click.option(
        "--model", "face_model_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
        envvar=FACE_MODEL_ENV,
        help="Face model folder: the 3D morphable model (BFM.mat, BFM_UV.mat). Default: the one the data was made "
             "with (its prn-dataset.json or manifest.json); for data that records none (real 300W-LP, "
             f"AFLW2000-3D) ${FACE_MODEL_ENV}, else required.")(function)


def resolve_face_model_dir(face_model_dir):
    """The face model of a command that makes data: --model (or $PRN_MODEL_DIR), else the built-in model."""
    return face_model_dir if face_model_dir is not None else builtin_face_model_dir()


def recorded_face_model_dir(face_model_dir, claim: FaceModelClaim):
    """The face model folder (absolute) of a command that reads data of which `claim` says what it records.

    model_dir: the --model parameter, which must then hold the recorded
    face model ($PRN_MODEL_DIR gives way to a record).
    """
    from_env = click.get_current_context().get_parameter_source("face_model_dir") is ParameterSource.ENVIRONMENT
    given = None if from_env and claim.fingerprint is not None else face_model_dir
    return resolve([claim], face_model="required", given_face_model=given).face_model_dir


class OptionConflict(click.ClickException):
    """Options that do not go together: one line, exit status 2 like click's usage errors."""

    exit_code = 2


def _memory(ctx, param, value):
    if value is None:
        return None
    from dask.utils import parse_bytes
    try:
        parse_bytes(value)
    except (ValueError, TypeError):
        raise click.BadParameter(f"{value!r} is not a memory size such as 16GiB") from None
    return value


CLUSTER_OPTIONS = ("jobs", "cores", "memory", "queue", "walltime", "dry_run")


def parallel_options(function):
    """Where a stage's tasks run: --workers N, --scheduler ADDRESS or --cluster slurm --jobs ...

    The command function keeps its (workers, scheduler) parameters; with
    --cluster its `scheduler` receives a prn.pipeline.stage.Cluster, which the
    stage runner turns into a batch cluster. --dry-run prints the batch job
    script and exits without running the command.
    """

    @functools.wraps(function)
    def command(*args, workers, scheduler, cluster, jobs, cores, memory, queue, walltime, dry_run, **kwargs):
        ctx = click.get_current_context()
        scheduler = _placement(ctx, scheduler, cluster, jobs, cores, memory, queue, walltime)
        if dry_run:
            click.echo(job_script(scheduler), nl=False)
            ctx.exit(0)
        return function(*args, workers=workers, scheduler=scheduler, **kwargs)

    options = [
        click.option("--workers", type=click.IntRange(min=1), default=usable_cores(), show_default="all cores",
                     help="Local worker processes (a Dask cluster on 127.0.0.1); 1 runs in this process."),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Address of a running Dask scheduler (e.g. tcp://10.0.0.1:8786) to run on instead "
                          "of local workers."),
        click.option("--cluster", type=click.Choice(CLUSTER_KINDS), default=None,
                     help="Submit batch jobs of Dask workers (needs: pip install 'prn-toolkit[slurm]'); "
                          "with --jobs, --cores, --memory."),
        click.option("--jobs", type=click.IntRange(min=1), default=None, help="--cluster: number of batch jobs."),
        click.option("--cores", type=click.IntRange(min=1), default=None,
                     help="--cluster: cores per job, one single-threaded worker process each."),
        click.option("--memory", default=None, metavar="SIZE", callback=_memory,
                     help="--cluster: memory per job, e.g. 16GiB (shared by its workers)."),
        click.option("--queue", default=None, help="--cluster: queue (SLURM partition)."),
        click.option("--walltime", default=None, metavar="HH:MM:SS", help="--cluster: time limit per job."),
        click.option("--dry-run", is_flag=True, help="--cluster: print the batch job script and exit."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _placement(ctx, scheduler, cluster, jobs, cores, memory, queue, walltime):
    """The `scheduler` argument of a stage: None, an address or a Cluster; OptionConflict when options clash."""
    def given(name):
        return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)

    if cluster is None:
        stray = [name for name in CLUSTER_OPTIONS if given(name)]
        if stray:
            raise OptionConflict(f"--{stray[0].replace('_', '-')} needs --cluster")
        if scheduler is not None and given("workers"):
            raise OptionConflict("--workers and --scheduler are mutually exclusive")
        return scheduler
    for other in ("scheduler", "workers"):
        if given(other):
            raise OptionConflict(f"--cluster and --{other} are mutually exclusive")
    missing = [f"--{name}" for name, value in (("jobs", jobs), ("cores", cores), ("memory", memory))
               if value is None]
    if missing:
        raise OptionConflict(f"--cluster {cluster} needs {', '.join(missing)}")
    return Cluster(kind=cluster, jobs=jobs, cores=cores, memory=memory, queue=queue, walltime=walltime)
