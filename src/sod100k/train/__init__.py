"""Training, dynamic weight decay and channel pruning of CSNet."""
