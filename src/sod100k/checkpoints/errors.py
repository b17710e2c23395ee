"""Errors raised when a checkpoint file cannot be used."""


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable, malformed or for another model."""
