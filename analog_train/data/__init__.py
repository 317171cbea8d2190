"""Data sets for training: MNIST, Fashion-MNIST, scikit-learn digits (images) and War and Peace (text).

Files are found and MD5-verified by :mod:`analog_train.data.store`; see its docstring for the look-up order.
:mod:`analog_train.data.catalog` lists what ``data.name`` may be.
"""

from analog_train.data.catalog import kind_of, load_data
from analog_train.data.datasets import DATASET_NAMES, Dataset, load_dataset
from analog_train.data.store import ENV_VAR, DataError, Downloader
from analog_train.data.text import CharVocab, TextCorpus, load_corpus, load_text

__all__ = ["DATASET_NAMES", "ENV_VAR", "CharVocab", "DataError", "Dataset", "Downloader", "TextCorpus", "kind_of",
           "load_corpus", "load_data", "load_dataset", "load_text"]
