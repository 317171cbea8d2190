"""``analog-train devices ...``: list, show, plot and fit device presets (typer sub-app).

    analog-train devices list
    analog-train devices show reram w_max=1.2
    analog-train devices plot softbounds reram --devices 3 --out figures/device_response   # --pulses N to fix the ramp length
    analog-train devices fit data.csv --family soft_bounds --out fitted/device/mine.yaml --plot fit.png

Heavy imports happen inside the commands so that ``analog-train --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn, Optional

import typer

EXIT_BAD_INPUT = 2

devices_app = typer.Typer(help="Device presets: list, show, plot pulse responses (paper Fig. 2), fit to data.",
                          no_args_is_help=True, add_completion=False)


def _fail(err: Exception) -> NoReturn:
    msg = str(err).strip().splitlines()
    typer.echo(f"error: {msg[0] if msg else type(err).__name__}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _check_writable(path: Path) -> None:
    """One-line error (exit 2) unless ``path`` can be written: its nearest existing folder must take a
    file (probed with a temporary one; nothing is left behind)."""
    import tempfile

    if path.is_dir():
        _fail(OSError(f"cannot write {path}: it is a folder"))
    base = next(p for p in path.absolute().parents if p.exists())
    if not base.is_dir():
        _fail(OSError(f"cannot write {path}: {base} is not a folder"))
    try:
        tempfile.TemporaryFile(dir=base).close()
    except OSError as err:
        _fail(OSError(f"cannot write {path}: {base}: {err.strerror or err}"))


def _compose(name: str, overrides: list[str] | None = None):
    """Composed and checked run config of a device (no algorithm presets); one-line error and exit 2."""
    from analog_train.config import ConfigError
    from analog_train.devices.presets import compose_device_run

    try:
        return compose_device_run(name, overrides or [])
    except ConfigError as err:
        _fail(err)


UNITS = {"granularity": "weight", "sp_std": "weight", "up_down": "rel.", "asym_w0": "rel.", "c2c": "rel."}


@devices_app.command("list")
def list_(
    devices: int = typer.Option(1000, help="devices drawn per preset for the asymmetry and SP spread"),
    seed: int = typer.Option(0, help="construction seed of the drawn array"),
) -> None:
    """Table of every preset: family, granularity, states, asymmetry, SP spread, c2c noise, source.

    The devices as their YAML describes them: algorithm presets (e.g. the SP subtraction of the
    TT presets) are not applied. Below the table, the keys each listed family adds to the common ones.
    """
    if devices < 1:
        _fail(ValueError(f"--devices={devices}: must be >= 1 (devices drawn per preset)"))
    import pandas as pd

    from analog_train.devices.parameters import granularity, number_of_states, resolve
    from analog_train.devices.presets import list_presets, source_of
    from analog_train.devices.response import array_summary
    from analog_train.devices.view import family_keys

    rows = []
    for name in list_presets():
        cfg = resolve(_compose(name).device)
        summary = array_summary(cfg, devices, seed)
        rows.append({"preset": name, "family": cfg.family, "granularity": granularity(cfg),
                     "n_states": number_of_states(cfg), "up_down": cfg.up_down,
                     "asym_w0": summary["asymmetry"], "sp_std": summary["sp_std"], "c2c": cfg.dw_min_std,
                     "source": cfg.source or source_of(name)})
    table = pd.DataFrame(rows)
    table.columns = pd.MultiIndex.from_tuples([(c, f"[{UNITS[c]}]" if c in UNITS else "") for c in table.columns])
    with pd.option_context("display.width", 250, "display.max_colwidth", 60, "display.float_format", "{:.4g}".format):
        typer.echo(table.to_string(index=False))
    typer.echo("\nweight: normalised conductance (the mean device spans about [-1, 1]); rel.: relative to the step."
               "\nKeys each family adds to the common ones (devices show NAME: every value, with units):")
    for family in dict.fromkeys(r["family"] for r in rows):
        typer.echo(f"  {family}: {', '.join(family_keys(family)) or '(none)'}")


@devices_app.command()
def show(
    name: str = typer.Argument(..., help="preset name (see `devices list`) or path to a device YAML"),
    overrides: Optional[list[str]] = typer.Argument(None, help="overrides such as w_max=1.2 (device. optional)"),
) -> None:
    """Print the resolved parameters of a device as YAML (units and meaning as comments, the family's own
    keys marked), with its granularity and number of states; algorithm presets are not applied."""
    from analog_train.devices.parameters import granularity, number_of_states
    from analog_train.devices.view import device_yaml

    cfg = _compose(name, overrides)
    typer.echo(device_yaml(cfg.device, cfg.device_preset), nl=False)
    typer.echo(f"# granularity: {granularity(cfg.device):.6g} [weight]\n"
               f"# number_of_states: {number_of_states(cfg.device):.6g}")


@devices_app.command()
def plot(
    names: list[str] = typer.Argument(..., help="preset names or device YAML paths"),
    pulses: Optional[int] = typer.Option(None, min=1, help="N: N up, N down, then 2N alternating pulses "
                                         "(default: 1.5 per device state, within 100-3000)"),
    devices: int = typer.Option(3, min=1, help="devices per preset"),
    out: Path = typer.Option(Path("figures/device_response"), help="output path without suffix (.png/.pdf/.csv)"),
    seed: int = typer.Option(0, help="run seed (c2c noise)"),
    construction_seed: int = typer.Option(0, help="seed of the device-to-device draw"),
) -> None:
    """Pulse-response panels of paper Fig. 2 per device: ramps, alternating pulses to the SP, step vs weight."""
    import pandas as pd

    from analog_train.devices.response import auto_pulses, pulse_response
    from analog_train.plots.device_response import plot_device_response, save_figure

    cfgs = [(name, _compose(name).device) for name in names]
    frames = []
    for name, cfg in cfgs:
        n = pulses or auto_pulses(cfg)
        frames.append(pulse_response(cfg, devices, n, n, 2 * n, seed, construction_seed,
                                     preset=Path(name).stem if name.endswith((".yaml", ".yml")) else name))
    frame = pd.concat(frames, ignore_index=True)
    csv = out.with_suffix(".csv")
    csv.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv, index=False)
    files = save_figure(plot_device_response(pd.read_csv(csv)), out)
    typer.echo("wrote " + ", ".join(str(p) for p in [csv, *files]))


@devices_app.command()
def fit(
    data: Path = typer.Argument(..., help="CSV: device_id, pulse_index, direction (up/down or +1/-1), weight or "
                                "conductance; optional cycle (repeated measurements)"),
    family: str = typer.Option("soft_bounds", help="soft_bounds | linear_step | constant_step | pow_step | exp_step | "
                               "piecewise_step"),
    out: Optional[Path] = typer.Option(None, help="device YAML to write (default fitted/device/<data stem>.yaml)"),
    plot: Optional[Path] = typer.Option(None, help="data-vs-fit figure (.png/.pdf; its CSV is written beside it)"),
    preset: Optional[str] = typer.Option(None, help="the preset whose algorithm settings the device takes (its "
                                         "device_preset; default: the generic settings)"),
    force: bool = typer.Option(False, "--force", help="write a fit that another family describes better"),
) -> None:
    """Fit a device family to measured pulse-response data and write a device YAML.

    Every family is fitted to compare them: the table of R^2 and residual RMS is printed, the
    chosen family's goes into the YAML. A fit whose parameters are not a valid device is refused,
    and so (unless --force) is one that another family describes clearly better.
    """
    import shlex
    import tempfile

    from analog_train.config import device_presets
    from analog_train.config.rules import show
    from analog_train.devices.fit import FAMILIES, FitDataError, compare, config_yaml, load_pulse_data, verdict

    if family not in FAMILIES:
        _fail(FitDataError(f"--family {family}: must be one of {', '.join(FAMILIES)}"))
    if preset is not None and preset not in device_presets():
        _fail(FitDataError(f"--preset {preset}: must be one of {', '.join(device_presets())}"))
    out = out or Path("fitted/device") / f"{data.stem}.yaml"
    for target in (out, plot):  # before the fit: a path that cannot be written is found at once
        if target is not None:
            _check_writable(target)
    try:
        result, qualities = compare(load_pulse_data(data), family, data)
    except FitDataError as err:
        _fail(err)
    typer.echo("fit quality of each family (R^2 against a constant step per device and direction):")
    for name, quality in sorted(qualities.items(), key=lambda kv: kv[1].rms):
        typer.echo(f"  {'*' if name == family else ' '} {name:<15} {quality}")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    problem = verdict(result, qualities)
    if problem and (not force or "degenerate" in problem):
        _fail(FitDataError(problem + ("" if "degenerate" in problem else " (--force writes it anyway)")))
    n_dev = len(result.per_device)
    source = (f"fitted by analog-train devices fit from {data.name} ({family}, {n_dev} devices, "
              f"{int(result.steps['used'].sum())} steps; {result.quality})")
    text = config_yaml(result, source, preset)
    with tempfile.TemporaryDirectory() as tmp:  # check that the YAML composes before writing anything
        probe = Path(tmp) / "probe.yaml"
        probe.write_text(text)
        _compose(str(probe))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    written = [out]
    if plot is not None:
        from analog_train.plots.device_response import plot_fit, save_figure

        csv = plot.with_suffix(".csv")
        csv.parent.mkdir(parents=True, exist_ok=True)
        result.steps.to_csv(csv, index=False)
        written += [csv, *save_figure(plot_fit(csv), plot, (plot.suffix.lstrip(".") or "png",))]
    typer.echo("\n".join(f"{k}: {show(v)}" for k, v in result.config.items() if k != "family"))
    typer.echo("wrote " + ", ".join(map(str, written)))
    if out.parent.name == "device":
        use = shlex.join(["analog-train", f"hydra.searchpath=[file://{out.parent.parent.resolve()}]", f"device={out.stem}"])
    else:
        use = ("copy it into a folder named device/ and run: analog-train "
               f"{shlex.quote('hydra.searchpath=[file://<its parent>]')} device={out.stem}")
    typer.echo(f"use it in a run: {use}")
