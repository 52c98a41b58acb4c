"""Exceptions raised by actionclip.

Every error a user can cause derives from :class:`ActionCLIPError`, whose message is one line that
names the input (file, model, URL) and the cause. The CLI prints exactly that line and exits non-zero.
"""


class ActionCLIPError(Exception):
    """Base class of all user-facing errors."""


class CheckpointError(ActionCLIPError):
    """A checkpoint file or folder could not be recognised or loaded."""


class DownloadError(ActionCLIPError):
    """A model could not be downloaded, or the cache holds a bad file."""


class VideoError(ActionCLIPError):
    """A video could not be opened, decoded or sampled."""


class UsageError(ActionCLIPError):
    """Bad arguments: empty or duplicate labels, unknown model name, etc."""


class OutputError(UsageError):
    """An output file or folder cannot be written (permission, a file in the way, disk full)."""
