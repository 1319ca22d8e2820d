"""The one exception type for bad user input."""


class InputError(ValueError):
    """A user-facing problem with an input file or argument.

    The message is one line that names the file (or option) and what is wrong;
    command-line entry points print it without a traceback.
    """
