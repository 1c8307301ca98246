"""User-facing errors: each one is a single line that names the file and the fix."""


class MerError(Exception):
    """An error caused by the user's input; the CLI prints it as one line without a traceback."""


class AudioError(MerError):
    """One audio file could not be decoded; batch jobs report it and skip the file."""
