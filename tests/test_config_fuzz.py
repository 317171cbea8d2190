"""Every invalid config value, wherever it sits, stops ``analog-train`` at start: exit 2, one line on
stderr naming the key, no traceback, and the run (data loading included) never starts.

The cases come from two sources that do not depend on each other:
* values no schema field can take, generated for every field of every group, family and
  algorithm (NaN, infinity, text for numbers, ``2`` for booleans, fractions for integers, unknown
  choices): these need no knowledge of the allowed ranges;
* values that look fine but are out of range, listed by hand from the physics (SPEC 2-5) and from
  the values a fuzzer found running to ``completed`` before the schemas checked them.
They go through the real entry point (``analog_train.cli.main`` with ``sys.argv`` patched), in process.
"""

from __future__ import annotations

import sys
import typing

import pytest

from analog_train import cli
from analog_train.config import ALGORITHMS, DEVICE_FAMILIES, field_infos
from analog_train.config.run import Config, DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from analog_train.config.crossbar import IOConfig, UpdateConfig

# A preset (or preset + family switch) per family whose YAML keys the family has, and an algorithm
# that accepts the device (pcm is one-sided: in-memory SGD only).
FAMILY_BASE = {
    "constant_step": ["device=idealized"],
    "linear_step": ["device=ecram"],
    "soft_bounds": ["device=reram"],
    "exp_step": ["device=reram_es"],
    "pow_step": ["device=idealized", "device.family=pow_step"],
    "piecewise_step": ["device=idealized", "device.family=piecewise_step"],
}
SKIP = {"family", "source", "name", "root", "device_c", "paper", "algo_overrides", "fast_device", "weight_device",
        "transfer_forward", "torch_device", "device_preset", "algo", "device", "model", "data", "io", "update",
        "train", "experiment"}


def bad_values(hint, rule) -> list[str]:
    """Values of the wrong kind for a field of type ``hint`` (as typed on the command line); +inf only
    where the field does not take it as a meaningful value (``rule.inf``)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union or (args and type(None) in typing.get_args(hint)):
        hint = args[0]
    if typing.get_origin(hint) is list:
        return ["abc", "[abc]", "[nan]"]
    if hint is bool:
        return ["2", "abc"]
    if hint is int:
        return ["1.5", "abc", "true"]
    if hint is float:
        return ["nan", "-inf", "abc", "true"] + ([] if rule.inf else ["inf"])
    if hint is str:
        return ["bogus_choice"]
    return []


def generated() -> list[tuple[list[str], str]]:
    """(overrides, key) for every field of every schema, with one value of the wrong kind each: the
    kinds rotate from field to field, so that every kind meets many fields at a few hundred cases."""
    cases = []

    def add(base, key, info):
        values = bad_values(info.hint, info.rule)
        if values:
            cases.append(([*base, f"{key}={values[len(cases) % len(values)]}"], key))

    def fields_of(cls, prefix, base):
        for info in field_infos(cls):
            if info.name not in SKIP:
                add(base, f"{prefix}.{info.name}" if prefix else info.name, info)

    for name, cls in {"io": IOConfig, "update": UpdateConfig, "model": ModelConfig, "data": DataConfig,
                      "train": TrainConfig}.items():
        fields_of(cls, name, [])
    fields_of(Config, "", [])
    common = {i.name for i in field_infos(DEVICE_FAMILIES["soft_bounds"])} & {
        i.name for i in field_infos(DEVICE_FAMILIES["pow_step"])}
    for family, cls in DEVICE_FAMILIES.items():
        for info in field_infos(cls):
            # the common keys once (on soft_bounds), each family's own keys on that family
            if (info.name in common) != (family == "soft_bounds") or info.name in SKIP:
                continue
            add([*FAMILY_BASE[family], "algo=sgd"], f"device.{info.name}", info)
    seen = set()
    for name, cls in ALGORITHMS.items():
        for info in field_infos(cls):
            if info.name in SKIP or info.name in seen:
                continue
            seen.add(info.name)
            add([f"algo={name}"], f"algo.{info.name}", info)
    fields_of(IOConfig, "algo.transfer_forward", ["algo=ttv2"])
    fields_of(ExperimentConfig, "experiment", ["experiment=weight_programming"])
    return cases


EXPERIMENT = ["experiment=weight_programming"]
# Out-of-range values that are numbers of the right kind: the physics decides.
LISTED = [
    (["device.reset=-1"], "device.reset"),  # outside [w_min, w_max]
    (["device.reset=1e6"], "device.reset"),
    (["device.reference_mean=5"], "device.reference_mean"),  # an offset beyond the device's range
    (["device.dw_min=1e300"], "device.dw_min"),  # more than the whole range in one step
    (["device.dw_min=0"], "device.dw_min"),
    (["device.n_states=0"], "device.n_states"),
    (["device.w_min=2"], "device.w_min"),  # w_min < w_max and the range contains 0
    (["device.w_max=-0.5"], "device.w_min"),
    (["device.w_max=1e300"], "device.w_max"),
    (["device.up_down=1"], "device.up_down"),
    (["device.dw_min_std=-0.1"], "device.dw_min_std"),
    (["device.dw_min_dtod=-1"], "device.dw_min_dtod"),
    (["device.dw_min_dtod=1e3"], "device.dw_min_dtod"),  # exp(1e3 xi) overflows
    (["device.corrupt_devices_prob=1.5"], "device.corrupt_devices_prob"),
    (["device.write_noise_std=-1"], "device.write_noise_std"),
    (["device.lifetime=-5"], "device.lifetime"),
    (["device.diffusion=10"], "device.diffusion"),  # a random walk wider than the range per step
    (["device.reset_std=-0.01"], "device.reset_std"),
    (["device.refresh_lower_thres=0.9"], "device.refresh_lower_thres"),
    (["device.refresh_every=-1"], "device.refresh_every"),
    (["device=capacitor", "device.gamma_up=nan"], "device.gamma_up"),
    (["device=idealized", "device.family=pow_step", "device.pow_gamma=0"], "device.pow_gamma"),
    (["device=idealized", "device.family=pow_step", "device.pow_gamma=1e3"], "device.pow_gamma"),
    (["device=reram_es", "device.gamma_up=80"], "device.gamma_up"),  # e^(gamma z) overflows
    (["device=idealized", "device.family=piecewise_step", "device.piecewise_up=[1,0,1]",
      "device.piecewise_down=[1,1,1]"], "device.piecewise_up"),  # the middle node sets the granularity
    (["device=idealized", "device.family=piecewise_step", "device.piecewise_up=[1,1]"], "device.piecewise_down"),
    (["device=pcm", "algo=agad"], "algo.name"),  # a one-sided cell cannot be A
    (["algo.fast_lr=0"], "algo.fast_lr"),
    (["algo.auto_momentum=1"], "algo.auto_momentum"),
    (["algo.auto_granularity=-1"], "algo.auto_granularity"),
    (["algo.transfer_every=0"], "algo.transfer_every"),
    (["algo.in_chop_prob=0"], "algo.in_chop_prob"),  # AGAD's chopper period needs rho > 0
    (["algo=cttv2", "algo.in_chop_prob=1.5"], "algo.in_chop_prob"),
    (["algo.tail_weightening=-1"], "algo.tail_weightening"),
    (["algo.transfer_forward.inp_noise=0.1"], "algo.transfer_forward.inp_noise"),
    (["algo.transfer_forward.out_noise=-1"], "algo.transfer_forward.out_noise"),
    (["update.um_grad_scale=0"], "update.um_grad_scale"),
    (["update.desired_bl=0"], "update.desired_bl"),
    (["io.max_bm_factor=-1"], "io.max_bm_factor"),
    (["io.max_bm_factor=0"], "io.max_bm_factor"),
    (["io.max_bm_res=-1"], "io.max_bm_res"),
    (["io.max_bm_res=0"], "io.max_bm_res"),
    (["io.inp_res=1"], "io.inp_res"),
    (["io.out_noise=-0.1"], "io.out_noise"),
    (["io.inp_bound=0"], "io.inp_bound"),
    (["train.lr=-0.1"], "train.lr"),
    (["train.lr_gamma=2"], "train.lr_gamma"),
    (["train.epochs=0"], "train.epochs"),
    (["train.lr_step_epochs=[0]"], "train.lr_step_epochs"),
    (["data.batch_size=0"], "data.batch_size"),
    (["model.hidden=[0,5]"], "model.hidden"),
    (["seed=-1"], "seed"),
    (["construction_seed=-1"], "construction_seed"),
    (["threads=0"], "threads"),
    (["torch_device=gpu"], "torch_device"),
    # the arrays and algorithms an experiment or an algorithm derives
    (["algo.device_c.w_max_dtod=-1"], "algo.device_c.w_max_dtod"),
    (["algo.device_c.reset=nan"], "algo.device_c.reset"),
    (["algo.device_c.pow_gamma=2"], "algo.device_c.pow_gamma"),  # not a soft_bounds key
    (["algo.device_c.one_sided=true", "algo.device_c.w_min=0"], "algo.device_c.one_sided"),
    ([*EXPERIMENT, "experiment.fast_device.reset=nan"], "experiment.fast_device.reset"),
    ([*EXPERIMENT, "experiment.fast_device.reference_std=inf"], "experiment.fast_device.reference_std"),
    ([*EXPERIMENT, "experiment.weight_device.w_max_dtod=-0.1"], "experiment.weight_device.w_max_dtod"),
    ([*EXPERIMENT, "experiment.weight_device.dw_min_std=nan"], "experiment.weight_device.dw_min_std"),
    ([*EXPERIMENT, "experiment.algo_overrides.fast_lr=inf"], "experiment.algo_overrides.fast_lr"),
    ([*EXPERIMENT, "experiment.algo_overrides.tail_weightening=-1"], "experiment.algo_overrides.tail_weightening"),
    ([*EXPERIMENT, "experiment.algo_overrides.no_such_key=1"], "experiment.algo_overrides.no_such_key"),
    ([*EXPERIMENT, "experiment.n_states=[0]"], "experiment.n_states"),
    ([*EXPERIMENT, "experiment.algos=[fp]"], "experiment.algos"),
    ([*EXPERIMENT, "experiment.scale=paper", "experiment.paper.samples=-1"], "experiment.paper.samples"),
    (["experiment.samples=10"], "experiment.samples"),  # experiment settings without an experiment
    # keys and options that do not exist, and Hydra's own errors
    (["+device.nonexistent=1"], "device.nonexistent"),
    (["device.nonexistent=1"], "device.nonexistent"),
    (["device.pow_gamma=2"], "device.pow_gamma"),  # a pow_step key on the soft_bounds preset
    (["+foo=1"], "foo"),
    (["foo=1"], "foo"),
    (["train.lrr=0.1"], "train.lrr"),
    (["+io.bogus=1"], "io.bogus"),
    (["algo=sgd", "algo.fast_lr=0.5"], "algo.fast_lr"),  # in-memory SGD has no transfer settings
    (["algo=fp", "+algo.in_chop_prob=0.1"], "algo.in_chop_prob"),
    (["algo=ttv2", "algo.in_chop_prob=0.1"], "algo.in_chop_prob"),  # TTv2 has no choppers
    (["algo=algo_schema"], "algo=algo_schema"),  # schema entries are not options
    (["device=device_schema"], "device=device_schema"),
    (["io=nonsense"], "io=nonsense"),
    (["device_preset=nonsense"], "device_preset=nonsense"),
    (["train.lr=[1"], "train.lr=[1"),  # override syntax
    (["+algo=sgd"], "algo"),
    (["--cfg", "job", "device.reset=nan"], "device.reset"),  # --cfg validates
    (["-m", "algo=fp,sgd", "device=nosuch,reram"], "device"),  # a sweep's Hydra errors, before any job starts
]
CASES = generated() + LISTED


def test_the_fuzz_covers_every_group_with_enough_cases():
    sections = {key.split(".")[0].split("=")[0] for _, key in CASES}
    assert {"device", "algo", "io", "update", "model", "data", "train", "experiment", "seed"} <= sections
    assert len(CASES) >= 200


@pytest.fixture
def no_run(monkeypatch):
    """The run (and with it any data loading) must not start: it raises if it does."""
    def started(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(cli, "run", started)
    monkeypatch.setattr("analog_train.data.load_dataset", started)


@pytest.mark.parametrize("overrides,key", CASES, ids=[" ".join(o) for o, _ in CASES])
def test_invalid_value_exits_2_with_one_line_naming_the_key(overrides, key, monkeypatch, capsys, no_run):
    monkeypatch.setattr(sys, "argv", ["analog-train", *overrides])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert stop.value.code == 2, out.err
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    assert key in lines[0], lines[0]
    assert "Traceback" not in out.err + out.out
