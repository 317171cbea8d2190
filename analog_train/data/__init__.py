"""Data sets for training: MNIST, Fashion-MNIST, scikit-learn digits (images) and War and Peace (text).

Files are found and MD5-verified by :mod:`analog_train.data.store`; see its docstring for the look-up order.
"""

from analog_train.data.datasets import DATASET_NAMES, Dataset, load_dataset
from analog_train.data.store import ENV_VAR, DataError, Downloader
from analog_train.data.text import CharVocab, load_text

__all__ = ["DATASET_NAMES", "ENV_VAR", "CharVocab", "DataError", "Dataset", "Downloader", "load_dataset", "load_text"]
