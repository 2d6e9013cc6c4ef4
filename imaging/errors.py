"""The one exception type for bad input: its message is one line that names what is wrong."""


class InputError(ValueError):
    """Bad input (a file, an argument, a configuration value); ``str()`` is the one-line reason.

    Command-line entry points print it as ``htclean: error: <message>`` and exit with status 2;
    anything else escaping them is a bug.
    """
