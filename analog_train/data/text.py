"""War and Peace, the character-level corpus of analog LSTM training papers, and a character vocabulary."""

from __future__ import annotations

from dataclasses import dataclass
import os
from typing import Any, Union

import numpy as np
import torch

from analog_train.data.store import DataError, PathLike, locate, read_verified

WARPEACE_FOLDER = "war-and-peace"
WARPEACE_FILE = "warpeace_input.txt"
WARPEACE_MD5 = "323a994953399c4599f2ab94b26701eb"


def load_text(cfg_or_root: Union[Any, PathLike, None] = None) -> str:
    """The War and Peace text, MD5-verified; found like the image sets (data.root, $ANALOG_TRAIN_DATA, cache).

    ``cfg_or_root`` is a data config (its ``root`` is used) or a folder. The text is the file decoded as
    UTF-8 without its byte-order mark, otherwise verbatim (CRLF line ends included), as char-rnn used it.
    There is no download mirror: copy the file in place.
    """
    is_path = cfg_or_root is None or isinstance(cfg_or_root, (str, os.PathLike))
    root = cfg_or_root if is_path else cfg_or_root.root
    folder = locate("war-and-peace", WARPEACE_FOLDER, {WARPEACE_FILE: WARPEACE_MD5}, root=root)
    return read_verified(folder / WARPEACE_FILE, WARPEACE_MD5).decode("utf-8-sig")


@dataclass(frozen=True)
class CharVocab:
    """The sorted distinct characters of a text; a character's id is its index in ``chars``."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """int64 ids of ``text``'s characters; vectorised because the corpus has 3 million of them."""
        table = _codepoints(self.chars)
        points = _codepoints(text)
        ids = np.searchsorted(table, points)
        known = ids < len(table)
        known[known] = table[ids[known]] == points[known]
        if not known.all():
            bad = sorted({text[i] for i in np.flatnonzero(~known)[:100]})
            raise DataError(f"characters not in the vocabulary: {bad!r}")
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids: torch.Tensor) -> str:
        """The text for ``ids`` (e.g. to print what an LSTM samples)."""
        return "".join(self.chars[i] for i in ids.tolist())


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
