"""The one exception type for bad user input."""


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
