"""Tests of analog_train.data: loading, verification, look-up order, offline behaviour, subsets, text.

Tests that need the real MNIST / Fashion-MNIST / War and Peace files find them through ANALOG_TRAIN_DATA
(CI sets it to ../shared/data) and are skipped when it is unset. Nothing here touches the network: every
download goes through an injected (or patched) downloader.
"""

from __future__ import annotations

import gzip
import os
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from configs import data as DataConfig
from analog_train.data import CharVocab, DataError, Dataset, load_dataset, load_text
from analog_train.data import datasets, store
from analog_train.data.idx import parse_idx

_ENV = os.environ.get(store.ENV_VAR, "")
REAL_DATA = Path(_ENV).resolve() if _ENV else None
IDX_FILES = list(datasets.IDX_SOURCES["mnist"].md5)


def real_folder(folder: str, files: list[str] = IDX_FILES) -> Path:
    """The real data folder, or skip the test saying why it is not available."""
    if REAL_DATA is None:
        pytest.skip(f"{store.ENV_VAR} is not set (CI sets it to ../shared/data); the real data files are needed")
    path = REAL_DATA / folder
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        pytest.skip(f"{path} lacks {', '.join(missing)}")
    return path


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty HOME and data root, so that no real copy of any data set can be found."""
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    data.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(store.ENV_VAR, str(data))
    return tmp_path


def failing_downloader(calls: list[str]):
    def download(url: str, dest: Path) -> None:
        calls.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    return download


def copying_downloader(source: Path, calls: list[str], fail_prefix: str = ""):
    """Serves files from ``source`` by the URL's base name; URLs starting with ``fail_prefix`` fail."""

    def download(url: str, dest: Path) -> None:
        calls.append(url)
        if fail_prefix and url.startswith(fail_prefix):
            raise urllib.error.URLError("mirror down")
        shutil.copyfile(source / url.rsplit("/", 1)[1], dest)

    return download


def regzip_with(src: Path, dest: Path, offset: int) -> None:
    """Write ``src`` to ``dest`` with one uncompressed byte changed, properly re-gzipped."""
    data = bytearray(gzip.decompress(src.read_bytes()))
    data[offset] ^= 0x01
    dest.write_bytes(gzip.compress(bytes(data)))


def mnist_copy(tmp_path: Path) -> Path:
    """A writable MNIST folder: links to the real files, to be replaced one by one."""
    real = real_folder("mnist")
    copy = tmp_path / "mnist-copy"
    copy.mkdir()
    for name in IDX_FILES:
        (copy / name).symlink_to(real / name)
    return copy


# ---------------------------------------------------------------------------------------------
# Real MNIST / Fashion-MNIST


# name, folder, first five training labels (pin the decoding; the MD5 pins the content)
IDX_SETS = [("mnist", "mnist", [5, 0, 4, 1, 9]), ("fashion_mnist", "fashion-mnist", [9, 0, 0, 3, 0])]


@pytest.fixture(scope="module", params=IDX_SETS, ids=[s[0] for s in IDX_SETS])
def real_set(request: pytest.FixtureRequest) -> tuple[Dataset, list[int]]:
    name, folder, first_labels = request.param
    path = real_folder(folder)
    before = sorted(os.listdir(path))
    ds = load_dataset(DataConfig(name=name, download=False))
    assert sorted(os.listdir(path)) == before, "the loader wrote beside the data files"
    assert ds.name == name
    return ds, first_labels


def test_idx_set_shapes_dtypes_ranges(real_set: tuple[Dataset, list[int]]) -> None:
    ds, first_labels = real_set
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.train_x.dtype == ds.test_x.dtype == torch.float32
    assert ds.train_y.shape == (60000,) and ds.test_y.shape == (10000,)
    assert ds.train_y.dtype == ds.test_y.dtype == torch.int64
    assert ds.n_classes == 10
    for x in (ds.train_x, ds.test_x):
        assert x.min() == 0.0 and x.max() == 1.0
    for y in (ds.train_y, ds.test_y):
        assert y.min() == 0 and y.max() == 9 and len(torch.unique(y)) == 10
    assert ds.train_y[:5].tolist() == first_labels


def test_subset_of_dictconfig_is_deterministic_and_sized() -> None:
    real_folder("mnist")
    cfg = OmegaConf.structured(DataConfig(name="mnist", train_subset=1000, test_subset=200, download=False))
    a, b = load_dataset(cfg), load_dataset(cfg)
    assert a.train_x.shape == (1000, 1, 28, 28) and a.test_x.shape == (200, 1, 28, 28)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert len(torch.unique(a.train_y)) == 10


def test_checksum_mismatch_rejected(tmp_path: Path) -> None:
    copy = mnist_copy(tmp_path)
    name = "train-labels-idx1-ubyte.gz"
    (copy / name).unlink()
    regzip_with(real_folder("mnist") / name, copy / name, offset=100)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="mnist", root=str(copy), download=False))
    msg = str(err.value)
    assert str(copy / name) in msg
    assert datasets.IDX_SOURCES["mnist"].md5[name] in msg and "MD5" in msg


@pytest.mark.parametrize("damage", ["truncated", "not_gzip"])
def test_damaged_gz_rejected(tmp_path: Path, damage: str) -> None:
    copy = mnist_copy(tmp_path)
    name = "train-images-idx3-ubyte.gz"
    raw = (real_folder("mnist") / name).read_bytes()
    (copy / name).unlink()
    (copy / name).write_bytes(raw[: len(raw) // 2] if damage == "truncated" else b"not a gzip file" * 10)
    with pytest.raises(DataError, match="truncated or corrupted") as err:
        load_dataset(DataConfig(name="mnist", root=str(copy), download=False))
    assert str(copy / name) in str(err.value)


# ---------------------------------------------------------------------------------------------
# Look-up order, offline behaviour and downloads (no network)


def test_offline_message_names_files_places_and_override(isolated: Path) -> None:
    calls: list[str] = []
    root = isolated / "empty"
    root.mkdir()
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="mnist", root=str(root), download=True), downloader=failing_downloader(calls))
    msg = str(err.value)
    for name in IDX_FILES:
        assert name in msg
    for place in (root, root / "mnist", isolated / "data" / "mnist", isolated / "home/.cache/analog-train/mnist"):
        assert str(place) in msg
    assert "data.root=" in msg and f"{store.ENV_VAR}=" in msg and "no internet" in msg
    # One failed request per mirror, not one per file and mirror: offline runs fail fast.
    assert calls == [m + IDX_FILES[0] for m in datasets.IDX_SOURCES["mnist"].mirrors]
    assert list((isolated / "home/.cache/analog-train/mnist").iterdir()) == []


def test_default_downloader_uses_short_timeout(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timeouts: list[float] = []

    def offline_urlopen(url: str, timeout: float) -> None:
        timeouts.append(timeout)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(store.urllib.request, "urlopen", offline_urlopen)
    with pytest.raises(DataError, match="Name or service not known"):
        load_dataset(DataConfig(name="mnist", download=True))
    assert timeouts and all(t <= 10 for t in timeouts)


def test_download_off_is_reported(isolated: Path) -> None:
    with pytest.raises(DataError, match=r"download is off \(data.download=false\)"):
        load_dataset(DataConfig(name="mnist", download=False))


def test_mocked_download_lands_in_cache_and_is_verified(isolated: Path) -> None:
    real = real_folder("mnist")
    calls: list[str] = []
    first, second = datasets.IDX_SOURCES["mnist"].mirrors
    cfg = DataConfig(name="mnist", download=True, train_subset=10, test_subset=10)
    ds = load_dataset(cfg, downloader=copying_downloader(real, calls, fail_prefix=first))
    cache = isolated / "home/.cache/analog-train/mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(IDX_FILES)  # no temporary files left
    assert calls == [first + IDX_FILES[0]] + [second + name for name in IDX_FILES]
    assert ds.train_x.shape == (10, 1, 28, 28)
    # Found in the cache next time: no further download.
    load_dataset(cfg, downloader=failing_downloader(calls))
    assert len(calls) == 5


def test_corrupt_download_is_not_kept(isolated: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in IDX_FILES:
        (bad / name).write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\0"))
    with pytest.raises(DataError, match="MD5") as err:
        load_dataset(DataConfig(name="mnist", download=True), downloader=copying_downloader(bad, []))
    assert datasets.IDX_SOURCES["mnist"].mirrors[0] + IDX_FILES[0] in str(err.value)
    assert list((isolated / "home/.cache/analog-train/mnist").iterdir()) == []


def test_lookup_order(isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"a.txt": "x"}
    env_copy, root_copy = isolated / "data" / "set", tmp_path / "root" / "set"
    for d in (env_copy, root_copy):
        d.mkdir(parents=True)
        (d / "a.txt").write_text("x")
    assert store.locate("set", "set", files, root=None) == env_copy
    assert store.locate("set", "set", files, root=root_copy.parent) == root_copy  # <root>/<folder>
    assert store.locate("set", "set", files, root=root_copy) == root_copy  # the folder itself
    monkeypatch.delenv(store.ENV_VAR)
    system = tmp_path / "usr/share/datasets/set"
    with pytest.raises(DataError, match="usr/share/datasets/set"):
        store.locate("set", "set", files, root=None, system_dirs=[system])
    shutil.copytree(env_copy, system)
    assert store.locate("set", "set", files, root=None, system_dirs=[system]) == system


def test_fashion_mnist_debian_folder() -> None:
    assert Path("/usr/share/datasets/fashion-mnist") in datasets.IDX_SOURCES["fashion_mnist"].system_dirs
    assert datasets.IDX_SOURCES["mnist"].system_dirs == ()


# ---------------------------------------------------------------------------------------------
# digits, subsets, names


def test_digits_offline(isolated: Path) -> None:
    ds = load_dataset(DataConfig(name="digits", download=False))
    assert ds.name == "digits" and ds.n_classes == 10
    assert ds.train_x.shape == (1437, 1, 8, 8) and ds.test_x.shape == (360, 1, 8, 8)
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    assert 0.0 == ds.train_x.min() and ds.train_x.max() == 1.0
    again = load_dataset(DataConfig(name="digits"))
    assert torch.equal(ds.train_x, again.train_x) and torch.equal(ds.test_y, again.test_y)
    assert torch.bincount(ds.test_y).min() >= 35  # stratified: every class about 20 % in the test split


def test_subsets_deterministic_sized_and_nested() -> None:
    small = load_dataset(DataConfig(name="digits", train_subset=50, test_subset=20))
    large = load_dataset(DataConfig(name="digits", train_subset=100))
    again = load_dataset(DataConfig(name="digits", train_subset=50, test_subset=20))
    assert small.train_x.shape == (50, 1, 8, 8) and small.test_y.shape == (20,)
    assert large.test_y.shape == (360,)
    assert torch.equal(small.train_x, again.train_x) and torch.equal(small.test_y, again.test_y)
    rows = {tuple(r) for r in large.train_x.flatten(1).tolist()}
    assert all(tuple(r) in rows for r in small.train_x.flatten(1).tolist())


@pytest.mark.parametrize("key,value", [("train_subset", 1438), ("test_subset", 361), ("train_subset", 0)])
def test_subset_out_of_range(key: str, value: int) -> None:
    cfg = DataConfig(name="digits", **{key: value})
    maximum = 1437 if key == "train_subset" else 360
    with pytest.raises(DataError, match=rf"data\.{key}={value}: must be in \[1, {maximum}\]"):
        load_dataset(cfg)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DataError, match="data.name=cifar10") as err:
        load_dataset(DataConfig(name="cifar10"))
    for name in ("mnist", "fashion_mnist", "digits"):
        assert name in str(err.value)


# ---------------------------------------------------------------------------------------------
# idx parser


def test_parse_idx_big_endian_and_errors() -> None:
    header = bytes([0, 0, 0x0B, 2]) + np.array([2, 3], dtype=">u4").tobytes()
    arr = parse_idx(header + np.arange(6, dtype=">i2").tobytes())
    assert arr.shape == (2, 3) and arr.tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"\x1f\x8b\x08\x00")
    with pytest.raises(ValueError, match="type code"):
        parse_idx(bytes([0, 0, 0x07, 1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="needs 24 bytes, the file has 23"):
        parse_idx(header + b"\0" * 11)


# ---------------------------------------------------------------------------------------------
# War and Peace


def test_war_and_peace_loads_and_encodes() -> None:
    folder = real_folder("war-and-peace", ["warpeace_input.txt"])
    text = load_text(DataConfig())
    assert text == load_text(str(folder))
    assert len(text) == 3265463 and text.startswith('"Well, Prince, so Genoa')
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert int(ids.max()) == len(vocab) - 1 and int(ids.min()) == 0
    assert vocab.decode(ids[:1000]) == text[:1000]


def test_char_vocab_unknown_character() -> None:
    vocab = CharVocab.from_text("abca")
    assert vocab.chars == "abc" and vocab.encode("cab").tolist() == [2, 0, 1]
    with pytest.raises(DataError, match="'z'"):
        vocab.encode("abz")


def test_war_and_peace_missing_message(isolated: Path) -> None:
    with pytest.raises(DataError) as err:
        load_text(None)
    msg = str(err.value)
    assert "warpeace_input.txt" in msg and str(isolated / "data" / "war-and-peace") in msg
    assert "data.root=/path/to/war-and-peace" in msg and "download" not in msg
