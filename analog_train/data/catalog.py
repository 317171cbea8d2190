"""Loading the data set a run names (``data.name``): images for classification, text for characters.

Which names exist, their kind and their image shapes are the config schemas'
(:data:`analog_train.config.DATASETS`), so that a config is checked before anything is read; the
kind picks the loader here and the task in :mod:`analog_train.runner.tasks`.
"""

from __future__ import annotations

from typing import Any, Callable, Union

from analog_train.config import DATASETS
from analog_train.data.datasets import Dataset, load_dataset
from analog_train.data.text import TextCorpus, load_corpus

LOADERS: dict[str, Callable[[Any], Union[Dataset, TextCorpus]]] = {"image": load_dataset, "text": load_corpus}


def kind_of(name: str) -> str:
    """``image`` or ``text``: the kind of the data set ``name``."""
    return DATASETS.schemas[name].DATA_KIND


def load_data(cfg: Any) -> Union[Dataset, TextCorpus]:
    """The data set ``cfg.name``, loaded and verified as its config says."""
    return LOADERS[kind_of(cfg.name)](cfg)
