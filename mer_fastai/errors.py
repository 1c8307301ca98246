"""User-facing errors: each one is a single line that names the file and the fix."""

__all__ = ["MerError", "AudioError", "Interrupted"]


class MerError(Exception):
    """An error caused by the user's input; the CLI prints it as one line without a traceback."""


class AudioError(MerError):
    """One audio file could not be decoded; batch jobs report it and skip the file."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, carrying what was kept (e.g. "3 finished cell(s) kept in runs/x/results.csv").

    Raise it from the KeyboardInterrupt where the command knows what it kept; the CLI prints
    "interrupted: <what was kept>; rerun the same command to resume" and exits with 130.
    """
