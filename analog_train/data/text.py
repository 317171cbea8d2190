"""War and Peace, the character-level corpus of analog LSTM training papers, a character vocabulary and the
train/test split the next-character task reads."""

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


RARE = "\ufffd"  # how decode shows the symbol of characters outside the vocabulary


@dataclass(frozen=True)
class CharVocab:
    """The sorted distinct characters of a text; a character's id is its index in ``chars``.

    With ``rare``, one more id (``len(chars)``) stands for every character outside ``chars``;
    without, such a character is an error.
    """

    chars: str
    rare: bool = False

    @classmethod
    def from_text(cls, text: str, rare: bool = False) -> CharVocab:
        return cls("".join(sorted(set(text))), rare)

    def __len__(self) -> int:
        return len(self.chars) + self.rare

    def encode(self, text: str) -> torch.Tensor:
        """int64 ids of ``text``'s characters; vectorised because the corpus has 3 million of them."""
        table = _codepoints(self.chars)
        points = _codepoints(text)
        ids = np.searchsorted(table, points)
        known = ids < len(table)
        known[known] = table[ids[known]] == points[known]
        if not known.all():
            if not self.rare:
                bad = sorted({text[i] for i in np.flatnonzero(~known)[:100]})
                raise DataError(f"characters not in the vocabulary: {bad!r}")
            ids[~known] = len(self.chars)
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids: torch.Tensor) -> str:
        """The text for ``ids`` (e.g. to print what an LSTM samples); the rare symbol shows as U+FFFD."""
        chars = self.chars + RARE if self.rare else self.chars
        return "".join(chars[i] for i in ids.tolist())


@dataclass(frozen=True, eq=False)
class TextCorpus:
    """A character corpus split into training and test ids (int64) over one vocabulary."""

    train: torch.Tensor
    test: torch.Tensor
    vocab: CharVocab
    name: str


def load_corpus(cfg: Any) -> TextCorpus:
    """War and Peace split for next-character prediction (a text DataConfig).

    The first ``1 - test_fraction`` of the text trains, the rest tests (contiguous, so the test text
    is prose the model never saw). The vocabulary is every character of the training text plus one
    rare symbol for characters only the test text holds: this copy ends with emoticons and other
    non-ASCII symbols (66 characters, 711 occurrences, 0.2 % of the test text) that no model could
    learn from the training text. ``train_subset`` / ``test_subset`` keep the first characters of
    each split (quick runs).
    """
    text = load_text(cfg)
    split = int(round(len(text) * (1.0 - cfg.test_fraction)))
    train_text, test_text = text[:split], text[split:]
    vocab = CharVocab.from_text(train_text, rare=True)
    train, test = vocab.encode(train_text), vocab.encode(test_text)
    for key, ids in (("train_subset", train), ("test_subset", test)):
        k = getattr(cfg, key)
        if k is not None and not 1 <= k <= len(ids):
            raise DataError(f"data.{key}={k}: must be in [1, {len(ids)}] characters, or null for all")
    if cfg.train_subset is not None:
        train = train[:cfg.train_subset]
    if cfg.test_subset is not None:
        test = test[:cfg.test_subset]
    return TextCorpus(train=train, test=test, vocab=vocab, name=cfg.name)


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
