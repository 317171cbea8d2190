"""Device physics against SPEC 2: pulse rules, clipping, SP, n_states, d2d draw, closed forms."""

import math

import pytest
import torch

from configs import device
from analog_train.devices.array import DeviceArray
from analog_train.devices.parameters import granularity, number_of_states

SHAPE = (40, 50)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def sb(**kw):
    base = dict(family="soft_bounds", w_max=1.0, w_min=-1.0, dw_min=0.02, dw_min_std=0.0, dw_min_dtod=0.0,
                up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)
    base.update(kw)
    return device(**base)


def test_n_states_sets_dw_min():
    cfg = device(n_states=40, w_max=1.0, w_min=-1.0)
    assert granularity(cfg) == pytest.approx(0.05)
    assert number_of_states(cfg) == pytest.approx(40)


def test_soft_bounds_single_pulse_matches_eq4():
    arr = DeviceArray(sb(dw_min_dtod=0.2, w_max_dtod=0.2, w_min_dtod=0.2), SHAPE, gen())
    w0 = torch.empty(1, *SHAPE).uniform_(-0.5, 0.5, generator=gen(1))
    arr.set_weights(w0)
    p = arr.params
    arr.pulse_once(torch.ones(1, *SHAPE), gen(2))
    expected_up = w0 + p["a_up"] * (1 - w0 / p["bmax"])
    torch.testing.assert_close(arr.weight, expected_up, rtol=1e-5, atol=1e-6)
    arr.set_weights(w0)
    arr.pulse_once(-torch.ones(1, *SHAPE), gen(2))
    expected_dn = w0 - p["a_dn"] * (1 - w0 / p["bmin"])
    torch.testing.assert_close(arr.weight, expected_dn, rtol=1e-5, atol=1e-6)


def test_constant_step_clips_at_own_bounds():
    arr = DeviceArray(sb(family="constant_step", dw_min=0.3, w_max_dtod=0.3, w_min_dtod=0.3), SHAPE, gen())
    for _ in range(20):
        arr.pulse_once(torch.ones(1, *SHAPE), gen())
    torch.testing.assert_close(arr.weight, arr.params["bmax"])
    arr.apply_counts(torch.zeros(1, *SHAPE), torch.full((1, *SHAPE), 50.0), gen())
    torch.testing.assert_close(arr.weight, arr.params["bmin"])


def test_symmetry_point_formula_and_convergence():
    cfg = sb(dw_min=0.01, dw_min_dtod=0.3, up_down_dtod=0.3, w_max_dtod=0.3, w_min_dtod=0.3)
    arr = DeviceArray(cfg, SHAPE, gen())
    p = arr.params
    formula = (p["a_up"] - p["a_dn"]) / (p["a_up"] / p["bmax"] - p["a_dn"] / p["bmin"])
    torch.testing.assert_close(arr.symmetry_point(), torch.clamp(formula, p["bmin"], p["bmax"]), rtol=1e-4, atol=1e-5)
    arr.set_weights(torch.full((1, *SHAPE), 0.9))
    for _ in range(1500):
        arr.pulse_once(torch.ones(1, *SHAPE), gen())
        arr.pulse_once(-torch.ones(1, *SHAPE), gen())
    # An up-down pair contracts the distance to the SP by (1 - a_up/b_max)(1 - a_dn/|b_min|); what is
    # left after 1500 pairs, plus one step of oscillation, bounds each device's own distance.
    contraction = (1 - p["a_up"] / p["bmax"]) * (1 + p["a_dn"] / p["bmin"])
    left = (0.9 - arr.symmetry_point()).abs() * contraction.pow(1500)
    tol = left + 2 * torch.maximum(p["a_up"], p["a_dn"])
    assert ((arr.weight - arr.symmetry_point()).abs() <= tol).all()


def test_d2d_statistics():
    cfg = sb(dw_min_dtod=0.1, up_down_dtod=0.05, w_max_dtod=0.2, w_min_dtod=0.1, dw_min=0.01)
    arr = DeviceArray(cfg, (200, 200), gen())
    p = arr.params
    n = p["bmax"].numel()
    se = 4 / math.sqrt(2 * n)  # relative standard error of a std estimate, 4 sigma
    assert p["bmax"].std().item() == pytest.approx(0.2, rel=se)
    assert p["bmin"].std().item() == pytest.approx(0.1, rel=se)
    gain = 0.5 * (p["a_up"] + p["a_dn"]) / cfg.dw_min
    asym = 0.5 * (p["a_up"] - p["a_dn"]) / cfg.dw_min
    assert gain.std().item() == pytest.approx(0.1, rel=se)
    assert asym.std().item() == pytest.approx(0.05, rel=se)
    assert gain.mean().item() == pytest.approx(1.0, abs=4 * 0.1 / math.sqrt(n))


def test_same_construction_seed_same_devices():
    cfg = device(n_states=40)
    a, b = DeviceArray(cfg, SHAPE, gen(7)), DeviceArray(cfg, SHAPE, gen(7))
    c = DeviceArray(cfg, SHAPE, gen(8))
    for k in a.params:
        torch.testing.assert_close(a.params[k], b.params[k])
    assert not torch.equal(a.params["bmax"], c.params["bmax"])


@pytest.mark.parametrize("family,mult", [("soft_bounds", False), ("soft_bounds", True), ("linear_step", True),
                                         ("constant_step", False)])
def test_n_pulses_closed_form_matches_pulse_by_pulse(family, mult):
    """Noise-free: the closed form equals n single pulses; noisy: mean and std agree statistically."""
    kw = dict(family=family, mult_noise=mult, gamma_up=0.3, gamma_down=0.5, dw_min=0.05,
              dw_min_dtod=0.2, w_max_dtod=0.2, w_min_dtod=0.2)
    n = torch.randint(0, 9, (1, *SHAPE), generator=gen(3)).float()
    for up in (True, False):
        exact = DeviceArray(sb(**kw), SHAPE, gen())
        fast = DeviceArray(sb(**kw), SHAPE, gen())
        for _ in range(8):
            exact.pulse_once(torch.where(n > _, 1.0 if up else -1.0, 0.0), gen())
        fast.apply_counts(n if up else torch.zeros_like(n), torch.zeros_like(n) if up else n, gen())
        torch.testing.assert_close(fast.weight, exact.weight, rtol=1e-4, atol=1e-5)

    # Noisy: one device, many repeats of 6 up pulses from w = 0.2.
    reps = 4000
    cfg = sb(**{**kw, "dw_min_dtod": 0.0, "w_max_dtod": 0.0, "w_min_dtod": 0.0, "dw_min_std": 0.3})
    ex = DeviceArray(cfg, (reps, 1), gen())
    fa = DeviceArray(cfg, (reps, 1), gen())
    ex.set_weights(torch.full((1, reps, 1), 0.2))
    fa.set_weights(torch.full((1, reps, 1), 0.2))
    for _ in range(6):
        ex.pulse_once(torch.ones(1, reps, 1), gen(_ + 10))
    fa.apply_counts(torch.full((1, reps, 1), 6.0), torch.zeros(1, reps, 1), gen(99))
    std_e, std_f = ex.weight.std().item(), fa.weight.std().item()
    se_mean = std_e / math.sqrt(reps)
    assert abs(ex.weight.mean().item() - fa.weight.mean().item()) < 5 * math.sqrt(2) * se_mean
    assert std_f == pytest.approx(std_e, rel=5 * math.sqrt(2 / reps) + 0.02)


def test_population_replicas_get_their_own_config():
    cfgs = [device(n_states=n) for n in (10, 20, 40)]
    arr = DeviceArray(cfgs, SHAPE, gen(), population=3)
    torch.testing.assert_close(arr.eps, torch.tensor([0.12, 0.06, 0.03]))
    assert arr.weight.shape == (3, *SHAPE)


def test_reset_draws_reset_bias_plus_noise_where_masked():
    cfg = sb(reset=0.1, reset_dtod=0.05, reset_std=0.02, w_max_dtod=0.2, w_min_dtod=0.2)
    arr = DeviceArray(cfg, (200, 200), gen())
    arr.set_weights(torch.full((1, 200, 200), -0.5))
    before = arr.weight.clone()
    mask = torch.zeros(1, 200, 200, dtype=torch.bool)
    mask[..., :100] = True
    arr.reset(mask, gen(1))
    assert torch.equal(arr.weight[~mask], before[~mask])
    dev = (arr.weight - arr.params["reset_bias"])[mask]
    n = dev.numel()
    assert dev.mean().item() == pytest.approx(0.0, abs=5 * 0.02 / math.sqrt(n))
    assert dev.std().item() == pytest.approx(0.02, rel=5 / math.sqrt(2 * n))
    assert arr.params["reset_bias"].std().item() == pytest.approx(0.05, rel=5 / math.sqrt(2 * 200 * 200))


def test_one_sided_config_needs_make_array():
    with pytest.raises(ValueError, match="make_array"):
        DeviceArray(sb(one_sided=True, w_min=0.0), SHAPE, gen())


def _rule(w, a, b_max, b_min, signs):
    """aihwkit SoftBounds, noise-free, as written: w <- clip(w + a (1 - w/b_max)) up, w - a (1 - w/b_min) down."""
    for s in signs:
        w = w + a * (1 - w / b_max) if s > 0 else w - a * (1 - w / b_min)
        w = min(max(w, b_min), b_max)
    return w


@pytest.mark.parametrize("kernels", ["1", "0"])
@pytest.mark.parametrize("ratio", [0.5, 0.96, 1.0, 1.5])
def test_steep_soft_bounds_follow_aihwkit_rule_in_both_engines(ratio, kernels, monkeypatch):
    """A step of `ratio` times the bound (up to 1 and beyond: aihwkit's ReRAM array presets) is not
    limited: each pulse is clip(w + a (1 - w/b)); the fast engine (compiled or torch) applies the
    same pulses in its order (half the ups, the downs, the other ups) and lands on the same weight."""
    monkeypatch.setenv("ANALOG_TRAIN_KERNELS", kernels)
    cfg = sb(dw_min=ratio)
    n_up, n_dn = 5, 3
    starts = torch.linspace(-0.9, 0.9, 7).view(1, 1, 7)
    signs = [1.0] * (n_up // 2) + [-1.0] * n_dn + [1.0] * (n_up - n_up // 2)
    expected = torch.tensor([_rule(float(w), ratio, 1.0, -1.0, signs) for w in starts.flatten()]).view(1, 1, 7)
    for engine in ("fast", "exact"):
        arr = DeviceArray(cfg, (1, 7), gen())
        arr.set_weights(starts)
        if engine == "fast":
            arr.apply_counts(torch.full((1, 1, 7), float(n_up)), torch.full((1, 1, 7), float(n_dn)), gen(1))
        else:
            for s in signs:
                arr.pulse_once(torch.full((1, 1, 7), s), gen(1))
        torch.testing.assert_close(arr.weight, expected, rtol=1e-5, atol=1e-6, msg=f"{engine} engine")
