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


class DetectorUnavailable(InputError):
    """The face detector asked for cannot run here (a package or file it needs is missing): give boxes instead."""
