"""Errors a user can fix. Each carries one line that names the problem and the fix.

The CLI prints ``error: <message>`` and exits with code 2 for any :class:`GenlabError`;
anything else is a bug and keeps its traceback.
"""


class GenlabError(Exception):
    """A problem with the user's input or files, explained in one line."""


class DatasetNotFoundError(GenlabError):
    """A data set's files are missing and could not be downloaded."""


class CheckpointError(GenlabError):
    """A checkpoint is missing, corrupt, or does not match the model it is loaded into."""


class ConfigError(GenlabError):
    """A configuration value that cannot work (image size, steps, guidance…)."""
