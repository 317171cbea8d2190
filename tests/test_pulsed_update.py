"""Pulsed outer-product update against SPEC 3: expected counts, correlations, engine agreement."""

import math

import pytest
import torch

from analog_train.config import UpdateConfig, make_device
from analog_train.crossbar.pulsed_update import pulse_trains, pulsed_update
from analog_train.devices.array import DeviceArray


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_expected_counts_and_row_correlation():
    """E[N_ij] = eta |x_j d_i| / eps while no probability saturates; entries sharing a row correlate."""
    eta, eps = 0.01, torch.tensor([0.01])
    x = torch.tensor([[[0.9, -0.5, 0.2]]])
    d = torch.tensor([[[0.8, -0.3]]])
    cfg = UpdateConfig(desired_bl=31)
    reps = 20000
    trains = pulse_trains(x.expand(1, reps, 3), d.expand(1, reps, 2), eta, eps, cfg, gen())
    n = trains.counts_per_sample()[0]  # (reps, out, in)
    expected = eta * (d[0, 0].abs().unsqueeze(1) * x[0, 0].abs().unsqueeze(0)) / eps
    var = expected  # a count of Bernoulli products with small p: variance about its mean
    assert ((n.mean(0) - expected).abs() <= 5 * torch.sqrt(var / reps)).all()
    # Shared d bits make N[0,0] and N[0,1] positively correlated (independent binomials would not).
    a, b = n[:, 0, 0], n[:, 0, 1]
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    assert corr > 5 / math.sqrt(reps)


def test_direction_and_no_update_for_zero_inputs():
    arr = DeviceArray(make_device("constant_step", dw_min=0.01, dw_min_std=0.0, dw_min_dtod=0.0,
                                  up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0), (2, 2), gen())
    x = torch.tensor([[[1.0, -1.0]]])
    d = torch.tensor([[[1.0, 0.0]]])
    pulsed_update(arr, x, d, 0.05, UpdateConfig(), gen())
    w = arr.weight[0]
    assert w[0, 0] < 0 and w[0, 1] > 0  # W -= eta d x^T
    assert torch.all(w[1] == 0)  # d_1 = 0: no pulses on that row
    before = arr.weight.clone()
    pulsed_update(arr, torch.zeros(1, 1, 2), d, 0.05, UpdateConfig(), gen())
    torch.testing.assert_close(arr.weight, before)


def test_fast_and_exact_engines_agree_statistically():
    """Per-element mean and std of dW over repeats agree between engines within statistical tolerance."""
    cfg = make_device("soft_bounds", n_states=100, w_max=1.0, w_min=-1.0, dw_min_std=0.3)
    reps, shape = 1500, (3, 4)
    x = torch.randn(1, 5, 4, generator=gen(1))
    d = torch.randn(1, 5, 3, generator=gen(2)) * 0.5
    results = {}
    for engine in ("fast", "exact"):
        arr = DeviceArray([cfg] * reps, shape, gen(3), population=reps)
        w0 = torch.full((reps, *shape), 0.3)
        arr.set_weights(w0)
        pulsed_update(arr, x.expand(reps, -1, -1), d.expand(reps, -1, -1), 0.05, UpdateConfig(engine=engine), gen(4))
        results[engine] = arr.weight - w0
    fast, exact = results["fast"], results["exact"]
    se = torch.sqrt((fast.var(0) + exact.var(0)) / reps)
    assert ((fast.mean(0) - exact.mean(0)).abs() <= 5 * se + 1e-6).all()
    ratio = fast.std(0) / exact.std(0)
    assert ((ratio - 1).abs() < 5 * math.sqrt(1 / reps) + 0.05).all()


SOFT_20 = dict(n_states=20, w_max=1.0, w_min=-1.0, dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)


@pytest.mark.parametrize("kernels", ["1", "0"])
def test_fast_engine_applies_mixed_signs_in_time_order(monkeypatch, kernels):
    """Noise-free soft bounds (20 states) and deterministic trains: samples of both signs in one mini-batch
    end exactly where sample-by-sample, pulse-by-pulse processing ends (the exact engine), in the
    compiled kernel and in torch. Ups and downs summed into one map would not (any fixed order of
    many ups and downs pulls a soft-bounds device away from where the sequence leaves it)."""
    monkeypatch.setenv("ANALOG_TRAIN_KERNELS", kernels)
    cfg = make_device("soft_bounds", dw_min_std=0.0, **SOFT_20)
    update = dict(desired_bl=3, update_bl_management=False, update_management=False)
    x = torch.where(torch.rand(1, 12, 5, generator=gen(1)) < 0.5, -1.5, 1.5)
    d = torch.where(torch.rand(1, 12, 4, generator=gen(2)) < 0.5, -1.5, 1.5)
    ends = {}
    for engine in ("fast", "exact"):
        arr = DeviceArray(cfg, (4, 5), gen(3))
        arr.set_weights(torch.full((1, 4, 5), 0.2))
        assert arr.kernel_ready == (kernels == "1")
        pulsed_update(arr, x, d, 1.0, UpdateConfig(engine=engine, **update), gen(4))  # every slot pulses
        ends[engine] = arr.weight
    assert (ends["exact"] - 0.2).abs().max() > 0.1
    torch.testing.assert_close(ends["fast"], ends["exact"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kernels", ["1", "0"])
def test_zero_mean_updates_keep_soft_bounds_devices_at_their_symmetry_point(monkeypatch, kernels):
    """Mini-batches of 20 random samples (about 36 pulses of both signs per device each) on 20-state
    soft-bounds devices that start at their SP (0): after 3 of them the weights' mean and spread
    agree between the fast and the exact engine within 5 standard errors. (Before the fast engine
    applied pulses run by run, half the ups, the downs, the other ups left a mean of +0.31.)"""
    monkeypatch.setenv("ANALOG_TRAIN_KERNELS", kernels)
    cfg = make_device("soft_bounds", dw_min_std=0.3, **SOFT_20)
    reps, shape, batch = 300, (4, 6), 20
    weights = {}
    for engine in ("fast", "exact"):
        arr = DeviceArray([cfg] * reps, shape, gen(3), population=reps)
        arr.set_weights(torch.zeros((reps, *shape)))
        g = gen(4)
        for _ in range(3):
            x = torch.randn(reps, batch, shape[1], generator=g)
            d = torch.randn(reps, batch, shape[0], generator=g)
            pulsed_update(arr, x, d, 0.5, UpdateConfig(engine=engine, desired_bl=5), g)
        w = arr.weight.reshape(reps, -1)  # replicas are independent, the devices of one are not
        weights[engine] = {"mean": w.mean(1), "rms": w.pow(2).mean(1).sqrt()}
    for stat in ("mean", "rms"):
        fast, exact = weights["fast"][stat], weights["exact"][stat]
        assert abs(fast.mean() - exact.mean()) <= 5 * math.sqrt((fast.var() + exact.var()) / reps), stat
