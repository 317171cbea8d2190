"""Where numba keeps this package's compiled kernels, and when a cached kernel is out of date.

numba's own cache locators (:mod:`numba.core.caching`) fail this package in two ways. They stamp a
cached function with its own source file only, so after an edit of ``devices/kernels.py`` (or of an
algorithm's ``buffer_rule``) the cached ``transfer_step`` of an algorithm, which inlines both, would
keep running the old code. And where neither the package folder nor the user's home is writable (a read-only
install, a service account) no locator applies and importing a kernel module fails.

:func:`register` puts the locators below in front of numba's for every function defined in this
package. The first whose folder is writable holds the cache:

1. ``NUMBA_CACHE_DIR``, when set (numba's own rule);
2. ``__pycache__`` beside the source, when the package folder is writable (a source checkout);
3. a per-user folder, ``~/.cache/analog-train/numba/<install>`` (``$XDG_CACHE_HOME`` honoured), one per
   installed copy of the package;
4. a private temporary folder of this process, removed at exit: the kernels are compiled on every
   run (a minute or two on 2 cores), with one warning.

Each stamps its entries with :func:`fingerprint`, a hash of the sources of every module of the
package that defines kernels, so an edit of any kernel module recompiles every kernel.
"""

from __future__ import annotations

import atexit
import hashlib
import re
import shutil
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from numba.core import caching, config
from numba.misc.appdirs import AppDirs

PACKAGE_DIR = Path(__file__).resolve().parent
_DEFINES_KERNELS = re.compile(r"@(?:numba\.)?n?jit\b|\bn?jit\(")  # numba's njit or jit decorator, called or not


@lru_cache(maxsize=None)
def kernel_sources(package_dir: Path = PACKAGE_DIR) -> tuple[Path, ...]:
    """The modules under ``package_dir`` that define numba kernels, sorted."""
    return tuple(path for path in sorted(package_dir.rglob("*.py"))
                 if _DEFINES_KERNELS.search(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=None)
def fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 over the path and content of every kernel module: the stamp of every cached kernel."""
    digest = hashlib.sha256()
    for path in kernel_sources(package_dir):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class PackageLocator(caching._CacheLocator):
    """A cache folder for a function of this package, stamped with the package's kernel fingerprint."""

    def __init__(self, py_func: Any, py_file: str) -> None:
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = self.folder(Path(py_file))

    @classmethod
    def folder(cls, source: Path) -> Optional[Path]:
        """The cache folder for functions defined in ``source``; None where this locator does not apply."""
        raise NotImplementedError

    def get_cache_path(self) -> str:
        return str(self._cache_path)

    def get_source_stamp(self) -> str:
        return fingerprint()

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Optional["PackageLocator"]:
        source = Path(py_file).resolve()
        if PACKAGE_DIR not in source.parents:
            return None
        locator = cls(py_func, str(source))
        if locator._cache_path is None:
            return None
        try:
            locator.ensure_cache_path()  # creates the folder and writes a probe file
        except OSError:
            return None
        return locator


def _relative_dir(source: Path) -> Path:
    return source.parent.relative_to(PACKAGE_DIR.parent)


class UserProvidedLocator(PackageLocator):
    """``NUMBA_CACHE_DIR``/analog_train/<sub-package>, when the variable is set."""

    @classmethod
    def folder(cls, source: Path) -> Optional[Path]:
        return Path(config.CACHE_DIR) / _relative_dir(source) if config.CACHE_DIR else None


class InTreeLocator(PackageLocator):
    """``__pycache__`` beside the source (a writable checkout or install)."""

    @classmethod
    def folder(cls, source: Path) -> Optional[Path]:
        return source.parent / "__pycache__"


def user_cache_dir() -> Path:
    """The per-user cache folder of this installed copy of the package (several installs never mix)."""
    install = hashlib.sha1(str(PACKAGE_DIR).encode()).hexdigest()[:12]
    return Path(AppDirs(appname="analog-train", appauthor=False).user_cache_dir) / "numba" / install


class UserLocator(PackageLocator):
    """:func:`user_cache_dir`/analog_train/<sub-package>, when the package folder is read-only."""

    @classmethod
    def folder(cls, source: Path) -> Optional[Path]:
        return user_cache_dir() / _relative_dir(source)


_process_dir: Optional[Path] = None


class ProcessLocator(PackageLocator):
    """A temporary folder of this process (mode 0700, removed at exit) when nothing else is writable."""

    @classmethod
    def folder(cls, source: Path) -> Optional[Path]:
        global _process_dir
        if _process_dir is None:
            try:
                _process_dir = Path(tempfile.mkdtemp(prefix="analog-train-numba-"))
            except OSError:
                return None
            atexit.register(shutil.rmtree, _process_dir, True)
            warnings.warn(f"no writable cache folder for the compiled kernels (tried {source.parent / '__pycache__'} "
                          f"and {user_cache_dir()}); they are compiled anew for this run, which takes a minute or "
                          "two. Set NUMBA_CACHE_DIR to a writable folder to keep them.", RuntimeWarning, stacklevel=2)
        return _process_dir / _relative_dir(source)


LOCATORS = (UserProvidedLocator, InTreeLocator, UserLocator, ProcessLocator)


def register() -> None:
    """Put :data:`LOCATORS` in front of numba's own (once); call before any kernel is defined."""
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in numba 0.61
    classes = impl._locator_classes
    if classes[:len(LOCATORS)] != list(LOCATORS):
        classes[:0] = LOCATORS


def locator_of(dispatcher: Any) -> Optional[PackageLocator]:
    """The locator a cached numba dispatcher uses (None when it does not cache): for tests and diagnostics."""
    cache = getattr(dispatcher, "_cache", None)
    impl = getattr(cache, "_impl", None)
    return getattr(impl, "_locator", None)

