"""The one exception type for bad user input, and the one lines of the faults a user meets."""


class InputError(ValueError):
    """A user-facing problem with an input file or argument.

    The message is one line that names the file (or option) and what is wrong;
    command-line entry points print it without a traceback.
    """


def first_line(error, limit=200) -> str:
    """The first line of an exception's message (at most `limit` characters), or its type when it has none."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__


def os_error_line(error: OSError) -> str:
    """'PATH: reason' for an OS error, e.g. 'out/shard-00000.h5: No space left on device'."""
    reason = error.strerror or first_line(error)
    return f"{error.filename}: {reason}" if error.filename else reason


class DetectorUnavailable(InputError):
    """The face detector asked for cannot run here (a package or file it needs is missing): give boxes instead."""


class HelperDied(RuntimeError):
    """A helper process (a data loader worker) died under the command: killed, often by the system short of memory."""


TORCH_LOADER_DEATH = "DataLoader worker (pid"   # how torch's RuntimeError of a dead loader worker begins
SHORT_OF_MEMORY = "a killed loader is often the system short of memory: fewer --workers need less"


def helper_death_line(error: BaseException) -> str | None:
    """The one line for a helper process's death found in `error` or the errors it came from, else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, HelperDied):
            return str(error)
        if isinstance(error, RuntimeError) and str(error).startswith(TORCH_LOADER_DEATH):
            return f"a data loader process died: {first_line(error).rstrip('. ')}; {SHORT_OF_MEMORY}"
        error = error.__cause__ or error.__context__
    return None
