"""Data: the clip format, shards on disk, datasets, the batch views that training and evaluation
share, and the tracker importer."""
