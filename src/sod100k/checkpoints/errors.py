"""Errors raised when a checkpoint file cannot be used."""


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable, malformed or for another model."""


#: What a checkpoint looks like, for errors about paths that are not one.
CHECKPOINT_FORMS = (
    "a checkpoint is a sod100k .pt file (written by sod100k train, prune and finetune), "
    "a training run folder holding best.pt or last.pt, or a released checkpoint folder "
    "holding NAME.pth.tar and NAME.bin"
)
