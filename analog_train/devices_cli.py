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
    """Composed and validated device node; one-line error and exit 2 on any problem."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from analog_train.config import ConfigError, validate_device
    from analog_train.devices.presets import compose_device

    try:
        cfg = compose_device(name, overrides or [])
        validate_device(cfg)
    except (ConfigError, HydraException, OmegaConfBaseException) as err:
        _fail(err)
    return cfg


@devices_app.command("list")
def list_(
    devices: int = typer.Option(1000, help="devices drawn per preset for the asymmetry and SP spread"),
    seed: int = typer.Option(0, help="construction seed of the drawn array"),
) -> None:
    """Table of every preset: family, granularity, states, asymmetry, SP spread, c2c noise, source."""
    if devices < 1:
        _fail(ValueError(f"--devices={devices}: must be >= 1 (devices drawn per preset)"))
    import pandas as pd

    from analog_train.devices.parameters import granularity, number_of_states, resolve
    from analog_train.devices.presets import list_presets, source_of
    from analog_train.devices.response import array_summary

    rows = []
    for name in list_presets():
        cfg = resolve(_compose(name))
        summary = array_summary(cfg, devices, seed)
        rows.append({"preset": name, "family": cfg.family, "granularity": granularity(cfg),
                     "n_states": number_of_states(cfg), "up_down": cfg.up_down,
                     "asym_w0": summary["asymmetry"], "sp_std": summary["sp_std"], "c2c": cfg.dw_min_std,
                     "source": cfg.source or source_of(name)})
    with pd.option_context("display.width", 200, "display.max_colwidth", 60, "display.float_format", "{:.4g}".format):
        typer.echo(pd.DataFrame(rows).to_string(index=False))


@devices_app.command()
def show(
    name: str = typer.Argument(..., help="preset name (see `devices list`) or path to a device YAML"),
    overrides: Optional[list[str]] = typer.Argument(None, help="overrides such as w_max=1.2 (device. optional)"),
) -> None:
    """Print the resolved parameters of a preset as YAML, with its granularity and number of states."""
    from omegaconf import OmegaConf

    from analog_train.devices.parameters import granularity, number_of_states

    cfg = _compose(name, overrides)
    typer.echo(OmegaConf.to_yaml(cfg), nl=False)
    typer.echo(f"# granularity: {granularity(cfg):.6g}\n# number_of_states: {number_of_states(cfg):.6g}")


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

    cfgs = [(name, _compose(name)) for name in names]
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
    data: Path = typer.Argument(..., help="CSV: device_id, pulse_index, direction (up/down or +1/-1), weight or conductance"),
    family: str = typer.Option("soft_bounds", help="soft_bounds | linear_step | constant_step | pow_step | exp_step | piecewise_step"),
    out: Optional[Path] = typer.Option(None, help="device YAML to write (default fitted/device/<data stem>.yaml)"),
    plot: Optional[Path] = typer.Option(None, help="data-vs-fit figure (.png/.pdf; its CSV is written beside it)"),
) -> None:
    """Fit a device family to measured pulse-response data and write a device YAML."""
    import tempfile

    from analog_train.devices.fit import FitDataError, config_yaml, fit as fit_data, load_pulse_data

    out = out or Path("fitted/device") / f"{data.stem}.yaml"
    for target in (out, plot):  # before the fit: a path that cannot be written is found at once
        if target is not None:
            _check_writable(target)
    try:
        result = fit_data(load_pulse_data(data), family, data)
    except FitDataError as err:
        _fail(err)
    n_dev = len(result.per_device)
    source = f"fitted by analog-train devices fit from {data.name} ({family}, {n_dev} devices, {len(result.steps)} pulses)"
    text = config_yaml(result.config, source)
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
    typer.echo("\n".join(f"{k}: {v}" for k, v in result.config.items() if k != "family"))
    typer.echo("wrote " + ", ".join(map(str, written)))
    use = f"hydra.searchpath=[file://{out.parent.parent.resolve()}] device={out.stem}" if out.parent.name == "device" \
        else f"copy it to a folder named device/ and run with hydra.searchpath=[file://<its parent>] device={out.stem}"
    typer.echo(f"use it in a run: analog-train {use}")
