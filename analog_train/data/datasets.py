"""Image classification data sets as in-memory tensors: MNIST, Fashion-MNIST and scikit-learn's digits.

The sets are small enough to hold in memory whole, which keeps the training loop free of data-loader
machinery and makes runs reproducible: the arrays depend only on the verified files (see
:mod:`analog_train.data.store`) and on fixed seeds, never on the run seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from analog_train.data.idx import parse_idx
from analog_train.data.store import DataError, Downloader, check_root, locate, read_verified

# Fixed seeds, independent of the run seed, so that every run sees the same split and subsets.
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2
SUBSET_SEED = 0


@dataclass(frozen=True)
class IdxSource:
    """Where an MNIST-style set lives: folder name, files with the MD5 of their uncompressed bytes."""

    folder: str
    md5: Mapping[str, str]
    mirrors: tuple[str, ...]
    system_dirs: tuple[Path, ...] = ()
    n_classes: int = 10


IDX_SOURCES: dict[str, IdxSource] = {
    "mnist": IdxSource(
        folder="mnist",
        md5={
            "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "fashion_mnist": IdxSource(
        folder="fashion-mnist",
        md5={
            "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        # Debian's dataset-fashion-mnist package (bookworm: 0.0~git20200523.55506a9-1) installs here.
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    ),
}
DATASET_NAMES = (*IDX_SOURCES, "digits")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split: images (N, 1, H, W) float32 in [0, 1] and int64 class labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    name: str


def load_dataset(cfg: Any, downloader: Optional[Downloader] = None) -> Dataset:
    """Load the set ``cfg.name`` (a DataConfig or its DictConfig), cut to ``cfg.train_subset``/``test_subset``.

    Subsets are the first k indices of a fixed permutation (numpy ``RandomState(SUBSET_SEED)``, whose
    stream numpy guarantees stable across versions), kept in their original order: the same k gives the
    same samples in every run, and a smaller subset is contained in a larger one. ``downloader`` replaces
    the HTTP fetch (tests inject one; nothing here needs the network otherwise).
    """
    name = cfg.name
    check_root(cfg.root)
    if name in IDX_SOURCES:
        ds = _load_idx(name, IDX_SOURCES[name], cfg, downloader)
    elif name == "digits":
        ds = _load_digits()
    else:
        raise DataError(f"data.name={name}: unknown data set, must be one of {', '.join(DATASET_NAMES)}")
    train_idx = _subset(len(ds.train_y), cfg.train_subset, "data.train_subset", f"{name} training split")
    test_idx = _subset(len(ds.test_y), cfg.test_subset, "data.test_subset", f"{name} test split")
    if train_idx is None and test_idx is None:
        return ds
    return Dataset(
        train_x=ds.train_x if train_idx is None else ds.train_x[train_idx],
        train_y=ds.train_y if train_idx is None else ds.train_y[train_idx],
        test_x=ds.test_x if test_idx is None else ds.test_x[test_idx],
        test_y=ds.test_y if test_idx is None else ds.test_y[test_idx],
        n_classes=ds.n_classes,
        name=ds.name,
    )


def _subset(n: int, k: Optional[int], key: str, what: str) -> Optional[torch.Tensor]:
    if k is None:
        return None
    if not 1 <= k <= n:
        raise DataError(f"{key}={k}: must be in [1, {n}] (the {what} has {n} samples), or null for all")
    perm = np.random.RandomState(SUBSET_SEED).permutation(n)[:k]
    return torch.from_numpy(np.sort(perm))


def _load_idx(name: str, src: IdxSource, cfg: Any, downloader: Optional[Downloader]) -> Dataset:
    folder = locate(name, src.folder, src.md5, root=cfg.root, system_dirs=src.system_dirs,
                    mirrors=src.mirrors, download=bool(cfg.download), downloader=downloader)

    def read(file: str, ndim: int) -> np.ndarray:
        path = folder / file
        try:
            arr = parse_idx(read_verified(path, src.md5[file]))
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from exc
        if arr.ndim != ndim or arr.dtype != np.uint8:
            raise DataError(f"{path}: expected {ndim}-d uint8 idx data, got {arr.ndim}-d {arr.dtype}")
        return arr

    def split(prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        images = read(f"{prefix}-images-idx3-ubyte.gz", 3)
        labels = read(f"{prefix}-labels-idx1-ubyte.gz", 1)
        if len(images) != len(labels):
            raise DataError(f"{folder}: {prefix} has {len(images)} images but {len(labels)} labels")
        x = torch.from_numpy(images.astype(np.float32)).div_(255.0).unsqueeze(1)
        return x, torch.from_numpy(labels.astype(np.int64))

    train_x, train_y = split("train")
    test_x, test_y = split("t10k")
    return Dataset(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, n_classes=src.n_classes, name=name)


def _load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (values 0..16), split 80/20 stratified with a fixed seed."""
    # Imported here: scikit-learn takes about a second to import and only this set needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED,
                                              stratify=y)
    return Dataset(train_x=torch.from_numpy(x_tr), train_y=torch.from_numpy(y_tr), test_x=torch.from_numpy(x_te),
                   test_y=torch.from_numpy(y_te), n_classes=10, name="digits")
