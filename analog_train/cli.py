"""Entry point: a known subcommand goes to typer, anything else is a Hydra run.

    analog-train algo=sgd device=softbounds      # Hydra: one run (or -m for a sweep)
    analog-train bench --samples 6000            # typer subcommand
    analog-train devices plot softbounds         # typer sub-app (devices list/show/plot/fit)
    analog-train experiment=weight_programming   # a paper experiment (Hydra; conf/experiment/)
    analog-train figures                         # every paper figure into figures/
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Optional

import hydra
import typer
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from analog_train.config import ConfigError, register_configs
from analog_train.config.compose import check_jobs
from analog_train.devices_cli import devices_app

EXIT_CONFIG_ERROR = 2  # the exit codes of runs: analog_train/runner/status.py

app = typer.Typer(help="analog-train subcommands (anything else is a Hydra run: analog-train --help).",
                  no_args_is_help=True, add_completion=False)


@app.command()
def bench(
    target: str = typer.Argument("network", help="network: train a model per algorithm beside the same model in "
                                 "torch; devices: one mini-batch update per device family and engine"),
    model: str = typer.Option("fc", help="the network: fc, lenet5 or lstm"),
    seconds: float = typer.Option(20.0, help="training time per case (the reference runs alongside)"),
    batch_size: Optional[int] = typer.Option(None, help="mini-batch size (default: the model's schedule)"),
    exact: bool = typer.Option(False, help="also time sgd on the exact engine (many times slower)"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads"),
    data_root: Optional[str] = typer.Option(None, help="folder with the data files (data.root)"),
    subset: Optional[int] = typer.Option(None, help="training samples to draw the batches from (data.train_subset)"),
) -> None:
    """Speed: s per 60k samples (1M characters) per algorithm, ratio to the model in torch, peak memory."""
    if target == "devices":
        from analog_train.runner.bench_devices import run_device_benchmark

        run_device_benchmark(threads=threads)
        return
    if target != "network":
        typer.echo(f"error: bench target {target!r} unknown (allowed: network, devices)", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR)
    from analog_train.runner.bench import run_benchmark

    try:
        run_benchmark(model=model, min_seconds=seconds, batch_size=batch_size, exact=exact, threads=threads,
                      data_root=data_root, subset=subset)
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None


@app.command()
def cost(
    n: int = typer.Option(512, help="array size N (N x N)"),
    digital_bits: int = typer.Option(8, help="digital precision (bit)"),
    n_s: int = typer.Option(2, help="transfer every n_s samples"),
    l_avg: float = typer.Option(5.0, help="average pulse-train length"),
    l_max: Optional[int] = typer.Option(None, help="fixed pulse-train length (replaces l_avg)"),
    t_pulse: float = typer.Option(5.0, help="pulse duration (ns)"),
    t_mvm: float = typer.Option(40.0, help="analog MVM time (ns)"),
    gflops: float = typer.Option(175.0, help="digital throughput per array (GFLOPS)"),
    mp_batch: int = typer.Option(100, help="mixed-precision batch size"),
) -> None:
    """Time per sample, digital operations and storage of each algorithm (paper Table 1)."""
    from analog_train.runner.cost import CostAssumptions, cost_table, format_cost_table

    try:
        assumptions = CostAssumptions(n=n, digital_bits=digital_bits, n_s=n_s, l_avg=l_avg, l_max=l_max,
                                      t_pulse_ns=t_pulse, t_mvm_ns=t_mvm, gflops_per_array=gflops, mp_batch=mp_batch)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    typer.echo(format_cost_table(cost_table(assumptions)))


@app.command()
def figures(
    out: Path = typer.Option(Path("figures"), help="folder for PNG, PDF and the CSV behind each figure"),
    paper_scale: bool = typer.Option(False, "--paper-scale", help="experiment.scale=paper (hours, not minutes)"),
    smoke: bool = typer.Option(False, "--smoke", help="tiny grids and few samples (seconds; for tests)"),
    only: Optional[str] = typer.Option(None, help="comma-separated subset of fig2,fig3,fig4,fig5,fig6,table1"),
) -> None:
    """Regenerate the paper's figures (Figs. 2-6, Table 1) at reduced or paper scale; reuse what is done."""
    from analog_train.figures import ExperimentEnded, make_figures
    from analog_train.runner.status import EXIT_CODES

    try:
        make_figures(out, paper_scale=paper_scale, smoke=smoke, only=only.split(",") if only else None,
                     log=typer.echo)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    except ExperimentEnded as err:  # interrupted (a signal) or failed: one line, the experiment's files kept
        typer.echo(f"{err.status}: {err}", err=True)
        raise typer.Exit(EXIT_CODES[err.status]) from None


@app.command()
def plot(
    figure: str = typer.Argument(..., help="fig2 | fig3 | fig4 | fig5 | fig6 | table1"),
    csv: Path = typer.Argument(..., exists=True, dir_okay=False, help="the CSV an experiment or `figures` wrote"),
    out: Optional[Path] = typer.Option(None, help="output path without suffix (default: next to the CSV)"),
) -> None:
    """Redraw one figure from an existing CSV (no simulation)."""
    from analog_train.figures import plotter
    from analog_train.plots.common import PlotInputError

    try:
        files = plotter(figure)(csv, out if out is not None else csv.with_suffix(""))
    except (ValueError, PlotInputError) as err:  # an unknown figure, a CSV it cannot be drawn from
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    typer.echo("wrote " + ", ".join(str(p) for p in files))


@app.command()
def report(
    figures: Path = typer.Option(Path("figures"), help="the folder `analog-train figures` wrote (its CSVs)"),
    out: Optional[Path] = typer.Option(None, help="the report file (default: <figures>/REPORT.md)"),
) -> None:
    """Which of the paper's claims hold: REPORT.md computed from the CSVs of a figures folder."""
    from analog_train.report import write_report

    try:
        path = write_report(figures, out)
    except OSError as err:  # no such figures folder, a report path that cannot be written
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    typer.echo(f"wrote {path}")


app.add_typer(devices_app, name="devices")

SUBCOMMANDS = frozenset(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def run(cfg: DictConfig) -> Optional[str]:
    """One training run or paper experiment into Hydra's output directory (a sweep: one job)."""
    from analog_train.runner.job import run_job

    hydra_cfg = HydraConfig.get()
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    end = run_job(cfg, Path(hydra_cfg.runtime.output_dir), sweep)
    if not sweep and end.exit_code:  # a sweep goes on with its other jobs and exits at its end
        sys.exit(end.exit_code)
    return end.status


def main() -> None:
    register_configs()
    args = sys.argv[1:]
    if args and args[0] in SUBCOMMANDS:
        app(args=args, prog_name="analog-train")
        return
    from analog_train.runner.rundir import RunDirTaken, resume_argv

    try:
        args = sys.argv[1:] = resume_argv(args)  # resume=DIR: the run's own overrides into DIR
        show_job = check_run_args(args)
    except (ConfigError, RunDirTaken) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    if show_job is not None:
        print(OmegaConf.to_yaml(show_job), end="")
        return
    run()


def check_run_args(args: list[str]) -> Optional[DictConfig]:
    """Everything a Hydra run would reject, and every config error, before Hydra starts.

    A bare word is a mistyped subcommand or an override without a value; otherwise every job of
    the run or sweep is composed, so Hydra's own errors (unknown option or key, syntax) end as one
    line (ConfigError) instead of a traceback, and a single run's values are checked too (a sweep's
    invalid point becomes a failed job, and the other jobs run). Returns
    the checked config that ``--cfg job`` shows (typed: every key of the device's family), else None.
    ``--help`` lists the subcommands before Hydra's help.
    """
    from hydra._internal.utils import get_args_parser

    parsed, _ = get_args_parser().parse_known_args(args)
    if parsed.help:
        print(subcommand_help())
        return None
    if parsed.hydra_help or parsed.info or parsed.shell_completion or parsed.experimental_rerun \
            or parsed.config_path or parsed.config_name or parsed.config_dir:
        return None  # Hydra's own business (another config tree: the run itself checks it)
    for word in parsed.overrides:
        if "=" not in word and not word.startswith("~"):
            raise ConfigError(bare_word(word))
    jobs = check_jobs(parsed.overrides, multirun=parsed.multirun)
    if parsed.cfg == "job" and not parsed.multirun:
        return OmegaConf.select(jobs[0], parsed.package) if parsed.package else jobs[0]
    return None


def bare_word(word: str) -> str:
    """The error for a word that is neither a subcommand nor ``key=value``."""
    from analog_train.config import CONF_DIR

    groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))
    close = difflib.get_close_matches(word, sorted(SUBCOMMANDS), n=1)
    if close:
        return f"{word!r} is not a command; did you mean {close[0]!r}? (commands: {', '.join(sorted(SUBCOMMANDS))})"
    if word in groups:
        return f"{word} needs a value: {word}=<option> (options in analog_train/conf/{word}/)"
    return (f"{word!r} is neither a command ({', '.join(sorted(SUBCOMMANDS))}) nor an override key=value "
            "(e.g. algo=sgd train.lr=0.1)")


def subcommand_help() -> str:
    """The subcommands with the first line of their help, read from the typer app."""
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    lines = [f"  {name:<9} {(commands[name].help or '').strip().splitlines()[0]}" for name in sorted(commands)]
    return ("analog-train [OVERRIDES...]      one training run (-m: a sweep); Hydra's help on the run config follows\n"
            "analog-train COMMAND [ARGS...]   a subcommand (analog-train COMMAND --help):\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
