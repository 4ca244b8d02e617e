"""Text encoders: task descriptions -> tokens the flow network cross-attends to.

The interface (:class:`TextEncoder`) is one call, `texts (list of B strings) -> (tokens
[B, L, D], mask bool [B, L])`, plus `dim`. An empty string means "no text" (all-False mask).

The built-in :class:`HashedTextEncoder` needs no download: words (lower-cased runs of letters
and digits, in any script: "толкни" is a word like "push") are hashed into a fixed number of
buckets with CRC-32 (stable across processes and machines, unlike Python's `hash`), embedded,
given learned word-position embeddings and mixed by a few transformer blocks; it is trained with
the flow model, so words its training texts never held (the shipped model's are the generator's
English descriptions) act as unknown words. A pretrained sentence encoder
(e.g. all-MiniLM-L6-v2, which PyPI carries with its weights) fits the same interface.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from motion_prior.networks.layers import RMSNorm, TransformerBlock

# Letters and digits of any script (str patterns are Unicode-aware), so non-English text is not
# silently dropped; for ASCII text these are exactly the words [a-z0-9]+ finds.
WORD = re.compile(r"[^\W_]+")


class TextEncoder(Protocol):
    dim: int

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """`B` strings -> (`tokens [B, L, dim]`, `mask bool [B, L]`)."""


@dataclass
class TextEncoderConfig:
    """buckets: hash buckets of the vocabulary; max_words: longer texts are cut (L);
    dim: token width; depth: transformer blocks; head_dim: attention head size."""

    buckets: int = 2048
    max_words: int = 16
    dim: int = 64
    depth: int = 1
    head_dim: int = 32


def words(text: str) -> list[str]:
    """Lower-cased words of `text`: runs of letters and digits (any script)."""
    return WORD.findall(text.lower())


def token_ids(texts: list[str], config: TextEncoderConfig) -> torch.Tensor:
    """`B` strings -> `long [B, max_words]` bucket ids (1..buckets), 0 where there is no word."""
    ids = torch.zeros(len(texts), config.max_words, dtype=torch.long)
    for row, text in enumerate(texts):
        for column, word in enumerate(words(text)[: config.max_words]):
            ids[row, column] = 1 + zlib.crc32(word.encode()) % config.buckets  # UTF-8: ASCII unchanged
    return ids


class HashedTextEncoder(nn.Module):
    """The built-in, download-free text encoder (see the module docstring)."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config, self.dim = config, config.dim
        self.embed = nn.Embedding(config.buckets + 1, config.dim)  # index 0 pads
        self.position = nn.Parameter(torch.randn(config.max_words, config.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(config.dim, config.head_dim) for _ in range(config.depth))
        self.norm = RMSNorm(config.dim)

    def token_ids(self, texts: list[str]) -> torch.Tensor:
        """`B` strings -> `long [B, max_words]` word ids (:func:`token_ids`)."""
        return token_ids(texts, self.config)

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed_ids(self.token_ids(texts).to(self.position.device))

    def embed_ids(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`long [B, max_words]` word ids -> (`tokens [B, max_words, dim]`, `mask bool [B, max_words]`).
        The tensor half of :meth:`forward`, which exported graphs run (strings stay in Python)."""
        x = self.embed(ids) + self.position
        for block in self.blocks:
            x = block(x, None)
        return self.norm(x), ids > 0
