"""One directory, one run: a run claims its directory before anything is written into it.

Default run directories carry the time to the microsecond (``conf/config.yaml``), so two runs
started together get two directories. A run whose directory (``hydra.run.dir``) already holds a
run refuses with one line, exit code 2, instead of mixing its files with the other run's: a live
run (it holds ``run.lock``), a finished one (``summary.json``) or an interrupted one (continue that
with ``resume=<dir>``). Hydra writes ``.hydra/`` and the job log before the task starts, so for
single runs the check is a Hydra callback (:class:`ClaimRunDir`, ``on_run_start``). Sweep jobs take
the lock in the job: their directories are the sweep's, which :mod:`.sweep_control` guards, and
a job found done is skipped, one found interrupted is resumed.

``resume=<dir>`` re-runs with that run's own overrides (``.hydra/overrides.yaml``) into that
directory (:func:`resume_argv`); the run continues from ``checkpoint.pt`` (:mod:`.checkpoint`).
"""

from __future__ import annotations

import copy
import json
import os
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from analog_train.config import ConfigError, validate
from analog_train.runner.checkpoint import CHECKPOINT, changed_key, check_same_run, saved_config

LOCK = "run.lock"
SUMMARY = "summary.json"
RUN_FILES = (SUMMARY, CHECKPOINT, "metrics.csv", LOCK, ".hydra")  # what makes a directory a run's
EXIT_REFUSED = 2


class RunDirTaken(Exception):
    """The directory belongs to another run; the message says which and what to do."""


def _holder(lock: Path) -> Optional[str]:
    """Who holds ``lock`` if that process may still run ("pid N on HOST"); None if it is gone."""
    try:
        pid_text, _, host = lock.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None  # unreadable or half-written: a crashed claim
    if host and host != socket.gethostname():
        return f"pid {pid} on {host}"  # cannot look at another host's processes: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # another user's process
    return f"pid {pid}"


def holds_lock(run_dir: Path) -> bool:
    """Whether this process holds ``run_dir``'s lock."""
    try:
        return int((Path(run_dir) / LOCK).read_text().split()[0]) == os.getpid()
    except (OSError, ValueError, IndexError):
        return False


def live_holder(run_dir: Path) -> Optional[int]:
    """The pid of a live process of this host that holds ``run_dir``'s lock (None if none)."""
    lock = Path(run_dir) / LOCK
    holder = _holder(lock) if lock.is_file() else None
    if holder is None or " on " in holder:
        return None
    return int(holder.split()[1])


def _take_lock(run_dir: Path) -> None:
    lock = run_dir / LOCK
    for _ in range(2):  # a second try after removing a stale lock
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if holds_lock(run_dir):
                return
            holder = _holder(lock)
            if holder is not None:
                raise RunDirTaken(f"{run_dir} is in use by a running analog-train ({holder}); choose another "
                                  f"hydra.run.dir (or delete {lock} if no such run exists)") from None
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
        return
    raise RunDirTaken(f"{run_dir}: could not take {lock}")


def claim(run_dir: Path, fresh: bool) -> None:
    """Take ``run_dir`` for this process, or raise :class:`RunDirTaken` (one line).

    ``fresh``: the directory must not hold another run's files (a new run); otherwise only a live
    holder refuses (a resumed run, a sweep job).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if holds_lock(run_dir):
        return
    _take_lock(run_dir)
    if fresh and any((run_dir / name).exists() for name in RUN_FILES if name != LOCK):
        release(run_dir)
        status = previous_status(run_dir)
        what = f"{'an' if status[0] in 'aeiou' else 'a'} {status} run" if status else "another run's files"
        can_resume = status not in (None, "completed", "diverged") and (run_dir / CHECKPOINT).is_file()
        raise RunDirTaken(f"{run_dir} holds {what}; choose another hydra.run.dir"
                          + (f", or resume={run_dir} to continue it" if can_resume else ""))


def release(run_dir: Path) -> None:
    """Give ``run_dir`` back (only if this process holds it)."""
    if holds_lock(run_dir):
        (Path(run_dir) / LOCK).unlink(missing_ok=True)


def previous_status(run_dir: Path) -> Optional[str]:
    """The status in ``run_dir``'s summary.json, "unfinished" with only a checkpoint, None if neither."""
    try:
        return str(json.loads((Path(run_dir) / SUMMARY).read_text())["status"])
    except (OSError, ValueError, KeyError):
        return "unfinished" if (Path(run_dir) / CHECKPOINT).is_file() else None


def earlier_config_change(run_dir: Path, task_cfg: DictConfig) -> Optional[str]:
    """How the run found in ``run_dir`` was configured differently from ``task_cfg`` ("key=old, now new"),
    or None if it is this very run (only :data:`.checkpoint.RESUMABLE_KEYS` may differ).

    The earlier config is the one its summary.json records, else its checkpoint's; a run that
    recorded neither counts as different.
    """
    try:
        saved = json.loads((Path(run_dir) / SUMMARY).read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        try:
            saved = saved_config(run_dir)
        except ValueError:
            return "no recorded config"
    changed = changed_key(saved or {}, OmegaConf.to_container(task_cfg, resolve=True))
    return None if changed is None else f"{changed[0]}={changed[1]}, now {changed[2]}"


def set_aside(run_dir: Path) -> Path:
    """Move an earlier run's results out of the way into ``run_dir/superseded-<time>/`` (nothing is
    deleted); Hydra's files, the job log and the lock stay."""
    run_dir = Path(run_dir)
    target = run_dir / datetime.now().strftime("superseded-%Y%m%d-%H%M%S.%f")  # never one used before
    target.mkdir()
    for path in run_dir.iterdir():
        if path.name in (".hydra", LOCK) or path.suffix == ".log" or path.name.startswith("superseded-"):
            continue
        path.rename(target / path.name)
    return target


def check_resumable(run_dir: Path, task_cfg: DictConfig) -> None:
    """Refuse (:class:`RunDirTaken`) a resume that has nothing to continue or would change the run."""
    if task_cfg.get("experiment"):
        raise RunDirTaken(f"resume={run_dir}: experiments do not resume, only training runs")
    try:
        saved = saved_config(run_dir)
        check_same_run(saved, OmegaConf.to_container(task_cfg, resolve=True), run_dir)
    except ValueError as err:  # ConfigError: no or unreadable checkpoint, another config
        raise RunDirTaken(str(err)) from None
    status = previous_status(run_dir)
    if status == "diverged":
        raise RunDirTaken(f"resume={run_dir}: that run diverged; there is nothing to continue")
    if status == "completed":
        done = json.loads((run_dir / SUMMARY).read_text()).get("epochs_completed", 0)
        if task_cfg.train.epochs <= done:
            raise RunDirTaken(f"resume={run_dir}: that run completed its {done} epochs; set train.epochs above "
                              f"{done} to train on")


def resume_argv(argv: list[str]) -> list[str]:
    """``resume=DIR ...`` -> DIR's own overrides, then the given ones, and ``hydra.run.dir=DIR``.

    A resumed run is the same run: it composes the config that run had (overrides on the command
    line may change only what :data:`.checkpoint.RESUMABLE_KEYS` allows; the run checks that).
    Raises :class:`RunDirTaken` for a directory that is not a run's or a sweep (``-m``).
    """
    given = [a for a in argv if a.startswith("resume=")]
    if not given:
        return argv
    run_dir = Path(given[-1].partition("=")[2]).expanduser()
    if any(a in ("-m", "--multirun") for a in argv):
        raise RunDirTaken("resume= continues one run; to resume a sweep run it again with the same "
                          "hydra.sweep.dir (its finished jobs are skipped, interrupted ones resumed)")
    if any(a.startswith("hydra.run.dir=") for a in argv):
        raise RunDirTaken(f"resume={run_dir} continues in {run_dir}; drop hydra.run.dir")
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise RunDirTaken(f"resume={run_dir}: not a run directory (no {saved})")
    previous = [str(o) for o in yaml.safe_load(saved.read_text()) or [] if not str(o).startswith("resume=")]
    rest = [a for a in argv if not a.startswith("resume=")]
    return [*previous, *rest, f"resume={run_dir.resolve()}", f"hydra.run.dir={run_dir.resolve()}"]


class ClaimRunDir(Callback):
    """Hydra callback: a single run claims ``hydra.run.dir`` before Hydra writes into it (exit 2 if taken)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(str(config.hydra.run.dir))
        task_cfg = copy.deepcopy(config)
        with open_dict(task_cfg):
            del task_cfg["hydra"]
        try:
            if task_cfg.get("resume"):
                validate(task_cfg)  # typed as the run saved it (defaults filled in)
                check_resumable(run_dir, task_cfg)
            claim(run_dir, fresh=not task_cfg.get("resume"))
        except (RunDirTaken, ConfigError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_REFUSED)
