"""Exceptions raised at the package's boundaries.

Every message names what was wrong, what was expected and what arrived, so a user can fix the
input without reading our code.
"""

from __future__ import annotations

import numpy as np


def describe(value) -> str:
    """A short description of a received value for error messages (shape/dtype for arrays)."""
    if isinstance(value, np.ndarray) or hasattr(value, "shape") and hasattr(value, "dtype"):
        text = f"array of shape {list(value.shape)} and dtype {value.dtype}"
        size = int(np.prod(value.shape))
        if 0 < size <= 8 and str(value.dtype) != "object":
            # Small arrays (end times, focal lengths, ...) are shown so the bad value is visible.
            text += f": {np.asarray(value).tolist()}"
        return text
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class InputError(ValueError):
    """An argument of a public function is invalid.

    Attributes:
        argument: name of the argument.
        expected: what was expected (shape, dtype, range).
        received: what arrived (a value or a description).
    """

    def __init__(self, argument: str, expected: str, received):
        self.argument, self.expected = argument, expected
        self.received = received if isinstance(received, str) else describe(received)
        super().__init__(f"{argument}: expected {expected}, got {self.received}")


class ClipFormatError(ValueError):
    """A clip, or a field of one, does not satisfy the clip data format.

    `where` locates it (e.g. "shard-00003.safetensors, clip 17"), `field` names the field.
    """

    def __init__(self, field: str, expected: str, received, where: str = ""):
        self.field, self.expected, self.where = field, expected, where
        self.received = received if isinstance(received, str) else describe(received)
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}field '{field}': expected {expected}, got {self.received}")


class CorruptShardError(IOError):
    """A shard file is missing, truncated or does not match the checksum in the index."""

    def __init__(self, shard: str, problem: str):
        self.shard, self.problem = shard, problem
        super().__init__(f"shard {shard} is corrupt: {problem}")
