"""The data sets a run can name (``data.name``): their kind, loader and, for images, shape and classes.

The kind decides the task (``image``: classification; ``text``: next-character prediction) and which
models can read the data (:mod:`analog_train.nn.models` registers each model's kind); the shape and
class count are known before anything is loaded, so configs are checked before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from analog_train.data.datasets import Dataset, load_dataset
from analog_train.data.text import TextCorpus, load_corpus


@dataclass(frozen=True)
class DataSetInfo:
    kind: str  # "image" or "text"
    load: Callable[[Any], Union[Dataset, TextCorpus]]
    input_shape: tuple[int, ...] = ()  # images: (C, H, W)
    n_classes: int = 0  # images: classes (text: the vocabulary, known after loading)


CATALOG: dict[str, DataSetInfo] = {
    "mnist": DataSetInfo("image", load_dataset, (1, 28, 28), 10),
    "fashion_mnist": DataSetInfo("image", load_dataset, (1, 28, 28), 10),
    "digits": DataSetInfo("image", load_dataset, (1, 8, 8), 10),
    "war_and_peace": DataSetInfo("text", load_corpus),
}


def load_data(cfg: Any) -> Union[Dataset, TextCorpus]:
    """The data set ``cfg.name``, loaded and verified as its config says."""
    return CATALOG[cfg.name].load(cfg)
