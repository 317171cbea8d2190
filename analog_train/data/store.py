"""Finding, verifying and downloading data files.

Data files are never committed: they are looked up, in order, in ``data.root`` (the folder itself, then
``<root>/<folder>``), ``$ANALOG_TRAIN_DATA/<folder>``, ``~/.cache/analog-train/<folder>`` and, for some
sets, the folder a Debian package installs them to. Every file is checked against the MD5 of its
*uncompressed* bytes before use, because re-packaged copies (e.g. Debian's) are recompressed. Nothing is
ever written beside found files (they may be read-only); downloads go to the cache folder only.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Optional, Union

ENV_VAR = "ANALOG_TRAIN_DATA"
DOWNLOAD_TIMEOUT_S = 10.0

PathLike = Union[str, os.PathLike]
# (url, destination file) -> None; raises OSError (urllib's errors are OSErrors) when it cannot fetch.
Downloader = Callable[[str, Path], None]


class DataError(RuntimeError):
    """A data set that cannot be found, read or verified; the message says what to do about it."""


def cache_root() -> Path:
    """Writable folder for downloads, resolved at call time so that a changed HOME is honoured."""
    return Path.home() / ".cache" / "analog-train"


def check_root(root: Optional[PathLike]) -> None:
    """DataError unless ``data.root`` is unset or names an existing folder (a typo must not go unnoticed)."""
    if root is None or str(root) == "":
        return
    base = Path(root).expanduser()
    try:
        if base.is_dir():
            return
    except PermissionError:
        raise _denied(base.parent) from None
    raise DataError(f"data.root={root}: {'not a folder' if base.exists() else 'no such folder'}")


def _denied(path: Path) -> DataError:
    return DataError(f"{path}: permission denied; make it readable (chmod), or point data.root at a readable copy")


def _lacks(folder: Path, files: Iterable[str]) -> str:
    """Why ``folder`` does not provide ``files`` ("no such folder", "permission denied", "missing ..."); "" if it does."""
    try:
        if not folder.is_dir():
            return "no such folder"
        missing = [name for name in files if not (folder / name).is_file()]
    except PermissionError:
        return "permission denied"
    return "missing " + ", ".join(missing) if missing else ""


def candidate_dirs(folder: str, root: Optional[PathLike], system_dirs: Sequence[Path] = ()) -> list[Path]:
    """The folders searched for ``folder``'s files, in look-up order, without duplicates."""
    check_root(root)
    dirs: list[Path] = []
    if root is not None and str(root) != "":
        base = Path(root).expanduser()
        dirs += [base, base / folder]
    env = os.environ.get(ENV_VAR, "")
    if env:
        dirs.append(Path(env).expanduser() / folder)
    dirs.append(cache_root() / folder)
    dirs.extend(system_dirs)
    return list(dict.fromkeys(dirs))


def urllib_download(url: str, dest: Path) -> None:
    """Default downloader; gives up after DOWNLOAD_TIMEOUT_S without an answer so offline runs fail fast."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, dest.open("wb") as out:
        shutil.copyfileobj(response, out)


def read_verified(path: Path, md5: str) -> bytes:
    """The content of ``path`` (gunzipped when it ends in .gz), after checking its MD5."""
    return _verified(path, path.suffix == ".gz", md5, str(path))


def _verified(path: Path, gzipped: bool, md5: str, label: str) -> bytes:
    try:
        data = path.read_bytes()
    except PermissionError:
        raise _denied(path) from None
    except OSError as exc:
        raise DataError(f"{label}: cannot read it ({exc})") from exc
    try:
        if gzipped:
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; truncation is an EOFError
        raise DataError(f"{label}: cannot read or decompress it ({exc}); the file is truncated or corrupted, "
                        "replace it") from exc
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != md5:
        raise DataError(f"{label}: MD5 of the uncompressed content is {actual}, expected {md5}; the file is "
                        "corrupted or not the expected data, replace it")
    return data


def locate(
    what: str,
    folder: str,
    files: Mapping[str, str],
    *,
    root: Optional[PathLike],
    system_dirs: Sequence[Path] = (),
    mirrors: Sequence[str] = (),
    download: bool = False,
    downloader: Optional[Downloader] = None,
) -> Path:
    """The first folder holding all of ``files`` (name -> MD5), downloading into the cache if allowed.

    Raises DataError naming the missing files, every folder searched and how to point at the data.
    """
    dirs = candidate_dirs(folder, root, system_dirs)
    for d in dirs:
        if not _lacks(d, files):
            return d
    download_note = ""
    if mirrors:
        if download:
            target = cache_root() / folder
            try:
                _download_missing(files, mirrors, target, downloader or urllib_download)
                return target
            except DataError as exc:
                download_note = f"download into {target} failed (no internet access?): {exc}"
        else:
            download_note = "download is off (data.download=false)"
    raise DataError(_not_found_message(what, folder, files, dirs, download_note))


def _download_missing(files: Mapping[str, str], mirrors: Sequence[str], target: Path, downloader: Downloader) -> None:
    """Fetch the files missing in ``target`` from the first mirror that serves them all."""
    failures = []
    for mirror in mirrors:
        try:
            target.mkdir(parents=True, exist_ok=True)
            for name, md5 in files.items():
                if not (target / name).is_file():
                    _fetch(mirror.rstrip("/") + "/" + name, target / name, md5, downloader)
            return
        except (OSError, DataError) as exc:
            failures.append(f"{mirror}: {exc}")
    raise DataError("; ".join(failures))


def _fetch(url: str, dest: Path, md5: str, downloader: Downloader) -> None:
    """Download to a temporary file beside ``dest``, verify, then rename: ``dest`` is never half-written."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        downloader(url, tmp)
        _verified(tmp, dest.suffix == ".gz", md5, url)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _not_found_message(what: str, folder: str, files: Mapping[str, str], dirs: Sequence[Path], download_note: str) -> str:
    searched = [f"    {d} ({_lacks(d, files)})" for d in dirs]
    lines = [
        f"{what} data not found: need {', '.join(files)}.",
        "  searched:",
        *searched,
    ]
    if download_note:
        lines.append(f"  {download_note}")
    lines.append(f"  fix: set data.root=/path/to/{folder} (the folder holding the files), or {ENV_VAR}=/path/to/data "
                 f"(the folder holding {folder}/)")
    return "\n".join(lines)
