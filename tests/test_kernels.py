"""The compiled kernels of the fast engine against the torch implementation and against SPEC 2-3.

The kernels (``analog_train.devices.kernels``) must compute what the torch closed form computes:
the same noise-free map (to float precision, bounds and near-bound phases included), the same noise
distribution, and the same coincidence counts as the matrix products of the bit trains.
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from numba import njit

from analog_train.config import UpdateConfig
from configs import device
from analog_train.crossbar.pulsed_update import PulseMasks, pulse_masks, pulse_probabilities, pulse_trains
from analog_train.devices import kernels
from analog_train.devices.array import DeviceArray


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def dev(family="soft_bounds", **kw):
    base = dict(family=family, w_max=1.0, w_min=-1.0, dw_min=0.02, dw_min_std=0.3, dw_min_dtod=0.3,
                up_down_dtod=0.05, w_max_dtod=0.2, w_min_dtod=0.2, gamma_up=0.3, gamma_down=0.5)
    base.update(kw)
    return device(**base)


def torch_array(monkeypatch, cfg, shape, seed=3):
    monkeypatch.setenv("ANALOG_TRAIN_KERNELS", "0")
    arr = DeviceArray(cfg, shape, gen(seed))
    monkeypatch.delenv("ANALOG_TRAIN_KERNELS")
    assert not arr.kernel_ready
    return arr


def pack(trains) -> PulseMasks:
    """The bit trains of ``trains`` as the masks the kernels read (sample b from slot ``b T``)."""
    def side(bits, sign):
        p, b, t, n = bits.shape
        words = max(1, -(-b * t // 64))
        slots = bits.permute(0, 3, 1, 2).reshape(p, n, b * t).numpy().astype(bool)
        signs = np.repeat(sign.permute(0, 2, 1).numpy(), t, axis=2)
        out = []
        for want in (1.0, -1.0):
            m = np.zeros((p, n, words * 64), dtype=bool)
            m[..., : b * t] = slots & (signs == want)
            weights = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
            out.append((m.reshape(p, n, words, 64).astype(np.uint64) * weights).sum(axis=3, dtype=np.uint64))
        return out
    xpos, xneg = side(trains.bx, trains.sign_x)
    dpos, dneg = side(trains.bd, trains.sign_d)
    p, b, t, _ = trains.bx.shape
    return PulseMasks(xpos=xpos, xneg=xneg, dpos=dpos, dneg=dneg, off=np.tile(np.arange(b + 1) * t, (p, 1)))


def up_down(trains):
    """Up and down pulses per device summed over the batch, from the per-sample coincidences."""
    per_sample = trains.counts_per_sample()
    direction = -(trains.sign_d.unsqueeze(-1) * trains.sign_x.unsqueeze(-2))  # +1: up pulses
    return (per_sample * (direction > 0)).sum(1), (per_sample * (direction < 0)).sum(1)


def test_kernel_normals_are_standard_normal():
    """One noisy constant step per device: (w - w0 - dw) / (c2c dw) are the kernel's N(0, 1) draws."""
    shape = (400, 500)
    arr = DeviceArray(dev("constant_step", dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0,
                          w_max=10.0, w_min=-10.0), shape, gen())
    assert arr.kernel_ready
    arr.apply_counts(torch.ones(1, *shape), torch.zeros(1, *shape), gen(1))
    z = ((arr.weight - 0.02) / (0.3 * 0.02)).reshape(-1).double()
    n = z.numel()
    assert abs(z.mean().item()) < 5 / math.sqrt(n)
    assert abs(z.var().item() - 1) < 5 * math.sqrt(2 / n)
    assert abs((z**3).mean().item()) < 5 * math.sqrt(15 / n)
    assert abs((z**4).mean().item() - 3) < 5 * math.sqrt(96 / n)
    tail = (z.abs() > 3).double().mean().item()  # 0.0027 for N(0, 1): Acklam's tails are right
    assert abs(tail - 0.0026998) < 5 * math.sqrt(0.0027 / n)
    # Neighbouring devices draw independent numbers.
    flat = z.reshape(-1)
    assert abs(torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1].item()) < 5 / math.sqrt(n)


@pytest.mark.parametrize("family,mult", [("soft_bounds", False), ("soft_bounds", True), ("linear_step", False),
                                         ("constant_step", False)])
def test_kernel_matches_torch_closed_form_without_noise(monkeypatch, family, mult):
    """Noise-free, the kernel's map equals the torch closed form, also where counts drive devices into a bound."""
    cfg = dev(family, dw_min_std=0.0, mult_noise=mult)
    shape = (30, 40)
    counts = torch.randint(0, 60, (2, 1, *shape), generator=gen(5)).float()
    counts[:, :, :5] = 0.0  # untouched devices stay as they are
    w0 = torch.empty(1, *shape).uniform_(-0.9, 0.9, generator=gen(6))
    results = []
    for arr in (DeviceArray(cfg, shape, gen(3)), torch_array(monkeypatch, cfg, shape)):
        arr.set_weights(w0)
        before = arr.weight.clone()  # set_weights clips w0 to each device's bounds
        arr.apply_counts(counts[0], counts[1], gen(7))
        results.append((arr.weight, arr.pulse_count))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1])
    assert bool((results[0][0][:, :5] == before[:, :5]).all())


@pytest.mark.parametrize("family,mult", [("soft_bounds", False), ("soft_bounds", True), ("linear_step", False)])
def test_kernel_noise_matches_torch_closed_form(monkeypatch, family, mult):
    """Same counts, many replicas of one device: mean and std of the result agree with the torch path."""
    reps, shape = 4000, (2, 3)
    cfg = dev(family, dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0, mult_noise=mult)
    n_up = torch.tensor([[3.0, 0.0, 7.0], [1.0, 12.0, 30.0]]).expand(reps, -1, -1)
    n_dn = torch.tensor([[2.0, 5.0, 0.0], [9.0, 12.0, 25.0]]).expand(reps, -1, -1)
    w0 = torch.tensor([[0.1, -0.5, 0.9], [0.0, 0.97, -0.95]])  # the last two near a bound: phase by phase
    out = []
    for make in (lambda: DeviceArray([cfg] * reps, shape, gen(3), population=reps),
                 lambda: torch_array(monkeypatch, [cfg] * reps, shape)):
        arr = make()
        arr.set_weights(w0)
        arr.apply_counts(n_up, n_dn, gen(8))
        out.append(arr.weight.double())
    kernel, reference = out
    se = torch.sqrt((kernel.var(0) + reference.var(0)) / reps)
    assert ((kernel.mean(0) - reference.mean(0)).abs() <= 5 * se + 1e-6).all()
    ratio = kernel.std(0) / reference.std(0)
    assert ((ratio - 1).abs() < 5 * math.sqrt(1 / reps)).all()


def _deterministic_array(shape):
    """Constant steps of 0.01, no noise, bounds far away: the weight change counts pulses exactly."""
    return DeviceArray(dev("constant_step", dw_min=0.01, dw_min_std=0.0, dw_min_dtod=0.0, up_down_dtod=0.0,
                           w_max_dtod=0.0, w_min_dtod=0.0, w_max=100.0, w_min=-100.0), shape, gen())


def test_mask_coincidences_equal_the_matrix_products():
    """Counting coincidences from bit masks gives the counts of the bit trains' matrix products."""
    shape, batch = (7, 90), 6  # 6 samples x up to 31 slots: several 64-bit words
    x = torch.randn(1, batch, shape[1], generator=gen(1)) * (torch.rand(1, batch, shape[1], generator=gen(2)) < 0.7)
    d = torch.randn(1, batch, shape[0], generator=gen(3))
    trains = pulse_trains(x, d, 1.0, torch.tensor([0.01]), UpdateConfig(desired_bl=31), gen(4))
    assert trains.bx.shape[2] * batch > 128
    n_up, n_dn = up_down(trains)
    arr = _deterministic_array(shape)
    arr.apply_masks(pack(trains), gen(5))
    torch.testing.assert_close(arr.weight, 0.01 * (n_up - n_dn), rtol=0, atol=1e-5)
    torch.testing.assert_close(arr.pulse_count, n_up + n_dn)


def test_mask_reads_see_the_pulses_up_to_their_sample():
    """A read at sample b sees the counts of samples 0..b on its column; the column ends with all of them."""
    shape, batch = (5, 12), 8
    x = torch.randn(1, batch, shape[1], generator=gen(1))
    d = torch.randn(1, batch, shape[0], generator=gen(2))
    trains = pulse_trains(x, d, 1.0, torch.tensor([0.01]), UpdateConfig(desired_bl=31), gen(3))
    assert trains.bx.shape[2] * batch > 128  # reads end inside the third or fourth 64-bit word
    per_sample = trains.counts_per_sample()[0]  # (B, out, in), coincidences per sample
    direction = -(trains.sign_d[0].unsqueeze(-1) * trains.sign_x[0].unsqueeze(-2))  # +1: up pulses
    steps = (per_sample * direction).cumsum(0)  # net pulses after each sample
    cols, samples = torch.tensor([3, 0, 7]), torch.tensor([0, 4, 7])
    arr = _deterministic_array(shape)
    reads = arr.apply_masks(pack(trains), gen(4), cols, samples)
    expected = torch.stack([0.01 * steps[b, :, c] for c, b in zip(cols.tolist(), samples.tolist())], dim=-1)
    torch.testing.assert_close(reads[0], expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(arr.weight[0], 0.01 * steps[-1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("family,mult,write_noise", [("soft_bounds", False, 0.0), ("soft_bounds", True, 0.0),
                                                    ("soft_bounds", False, 0.05), ("linear_step", False, 0.0)])
def test_vectorised_update_equals_the_scalar_update(family, mult, write_noise):
    """``apply_trains`` updates the devices of a row together (``_lanes``, ``_lanes_near``); with the same
    seed it gives what the scalar update of every device (``apply_counts``) gives, on every path:
    far from the bounds, near a bound (phase by phase), Gaussians in the tails, and 64 pulses or more.
    The signs of x and d stay the same over the batch, so every device gets one run of pulses."""
    cfg = dev(family, mult_noise=mult, write_noise_std=write_noise)
    shape, batch = (40, 60), 6
    x = torch.randn(1, batch, shape[1], generator=gen(1)).abs() * torch.randn(1, 1, shape[1], generator=gen(8)).sign()
    d = torch.randn(1, batch, shape[0], generator=gen(2)).abs() * torch.randn(1, 1, shape[0], generator=gen(9)).sign()
    trains = pulse_trains(x, d, 1.0, torch.tensor([0.003]), UpdateConfig(desired_bl=31), gen(3))
    n_up, n_dn = up_down(trains)
    assert bool(((n_up > 0) & (n_dn > 0)).sum() == 0) and bool((n_up >= 64).any() | (n_dn >= 64).any())
    w0 = torch.empty(1, *shape).uniform_(-0.9, 0.9, generator=gen(4))
    w0[:, ::3] = 0.97 * torch.sign(w0[:, ::3])  # a third of the devices start next to a bound
    arrays = [DeviceArray(cfg, shape, gen(5)) for _ in range(2)]
    for arr in arrays:
        arr.set_weights(w0, gen(6))
    vectorised, scalar = arrays
    vectorised.apply_masks(pack(trains), gen(7))
    scalar.apply_counts(n_up, n_dn, gen(7))
    torch.testing.assert_close(vectorised.g, scalar.g, rtol=0, atol=2e-6)
    torch.testing.assert_close(vectorised.w_noise, scalar.w_noise, rtol=0, atol=0)
    torch.testing.assert_close(vectorised.pulse_count, scalar.pulse_count, rtol=0, atol=0)
    # Every path was taken: devices with 64+ pulses, devices at a bound, and many that moved.
    assert bool(((n_up >= 64) | (n_dn >= 64)).any())
    bounds = vectorised.kernel_state()[3][:, 2:4]
    g = vectorised.g.reshape(-1).numpy()
    assert ((g == bounds[:, 0]) | (g == bounds[:, 1])).any()
    assert int(((n_up + n_dn) > 0).sum()) > 0.5 * shape[0] * shape[1]


@pytest.mark.parametrize("management, bl_management", [(True, True), (True, False), (False, True), (False, False)])
def test_kernel_train_scales_equal_the_torch_probabilities(management, bl_management):
    """Train lengths and slot probabilities of the compiled pass are those of pulse_probabilities (SPEC 3)."""
    n_p, batch = 3, 40
    x = torch.randn(n_p, batch, 30, generator=gen(1)) * torch.rand(n_p, batch, 1, generator=gen(2)) * 3
    d = torch.randn(n_p, batch, 20, generator=gen(3)) * torch.rand(n_p, batch, 1, generator=gen(4)) * 0.1
    x[0, 0], d[1, 1] = 0.0, 0.0  # a sample without input, one without error: no train
    eta = torch.tensor([[0.5], [0.05], [0.0]])  # per replica; the last one does not learn
    eps = torch.tensor([0.01, 0.002, 0.01])
    cfg = UpdateConfig(desired_bl=31, um_grad_scale=0.7, update_management=management,
                       update_bl_management=bl_management)
    expected = pulse_probabilities(x, d, eta, eps, cfg)
    bl, b_x, a_d = kernels.train_scales(x.numpy(), d.numpy(), eta.expand(n_p, batch).contiguous().numpy(),
                                        eps.numpy(), 31.0, 0.7, management, bl_management)
    assert bl[0, 0] == 0 and bl[1, 1] == 0 and (bl[2] == 0).all()
    np.testing.assert_array_equal(bl, expected.bl.numpy())
    live = torch.from_numpy(bl > 0).unsqueeze(-1)
    p_x = torch.clamp(x.abs() * torch.from_numpy(b_x).float().unsqueeze(-1), max=1.0)
    p_d = torch.clamp(d.abs() * torch.from_numpy(a_d).float().unsqueeze(-1), max=1.0)
    torch.testing.assert_close(p_x * live, expected.p_x * live, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(p_d * live, expected.p_d * live, rtol=1e-5, atol=1e-7)
    assert 0 < int(live.sum()) < n_p * batch and (bl > 1).any() and (bl < 31).any()


def test_kernel_pulse_masks_have_the_slot_probabilities():
    """Bits of the kernel's trains are set with probability p_x within the train length, by sign."""
    reps, n = 3000, 4
    x = torch.tensor([0.9, -0.4, 0.1, 0.0]).expand(1, reps, n)
    d = torch.ones(1, reps, 1)
    cfg = UpdateConfig(desired_bl=7)
    probabilities = pulse_probabilities(x, d, 0.02, torch.tensor([0.01]), cfg)
    masks = pulse_masks(x, d, 0.02, torch.tensor([0.01]), cfg, gen(1))
    bl = int(probabilities.bl[0, 0])
    assert masks.off[0, -1] == reps * bl  # every sample has a train of bl slots
    bits = np.unpackbits(masks.xpos.view(np.uint8), bitorder="little").reshape(n, -1)[:, : reps * bl]
    bits_neg = np.unpackbits(masks.xneg.view(np.uint8), bitorder="little").reshape(n, -1)[:, : reps * bl]
    p = probabilities.p_x[0, 0].numpy()
    freq = np.where(x[0, 0].numpy() < 0, bits_neg.mean(1), bits.mean(1))
    se = np.sqrt(p * (1 - p) / (reps * bl)) + 1e-12
    assert (np.abs(freq - p) <= 5 * se).all()
    assert bits[1].sum() == 0 and bits_neg[0].sum() == 0  # each bit goes to its element's sign
    assert bits[3].sum() == 0 and bits_neg[3].sum() == 0  # x = 0: no pulses
    d_bits = np.unpackbits(masks.dpos.view(np.uint8), bitorder="little")[: reps * bl]
    p_d = float(probabilities.p_d[0, 0, 0])
    assert abs(d_bits.mean() - p_d) <= 5 * math.sqrt(p_d * (1 - p_d) / (reps * bl)) + 1e-12


def test_kernel_pulse_masks_lay_the_trains_end_to_end():
    """Sample b owns slots off[b] .. off[b + 1] - 1, off the running sum of the train lengths; trains of
    different lengths straddle 64-bit words, and nothing is set past the last train."""
    batch, n = 23, 50
    scale = torch.linspace(0.05, 1.0, batch).view(1, batch, 1)
    x = torch.rand(1, batch, n, generator=gen(1)) * scale
    d = torch.ones(1, batch, 3)
    cfg = UpdateConfig(desired_bl=13)
    masks = pulse_masks(x, d, 0.1, torch.tensor([0.01]), cfg, gen(2))
    bl = pulse_probabilities(x, d, 0.1, torch.tensor([0.01]), cfg).bl[0].long()
    assert len(set(bl.tolist())) > 5
    np.testing.assert_array_equal(masks.off[0], np.concatenate([[0], np.cumsum(bl.numpy())]))
    total = int(masks.off[0, -1])
    assert masks.xpos.shape[2] == -(-total // 64)
    bits = np.unpackbits(masks.xpos.view(np.uint8), bitorder="little").reshape(n, -1)
    assert bits[:, total:].sum() == 0
    per_sample = np.add.reduceat(bits[:, :total].sum(0), masks.off[0, :-1])
    assert (per_sample > 0).all()  # every sample has pulses in its own slots


def test_kernel_redraws_write_noise_of_touched_devices_only():
    """Write noise (aihwkit write_noise_std, in dw_min units) is redrawn where pulses land, kept elsewhere."""
    shape = (200, 300)
    cfg = dev("soft_bounds", dw_min_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0, write_noise_std=5.0)
    arr = DeviceArray(cfg, shape, gen())
    assert arr.kernel_ready and arr.has_write_noise
    touched = torch.rand(1, *shape, generator=gen(1)) < 0.5
    arr.apply_counts(touched.float() * 2, torch.zeros(1, *shape), gen(2))
    noise = arr.w_noise
    assert bool((noise[~touched] == 0).all())
    z = (noise[touched] / arr.params["write_noise"][touched]).double()
    n = z.numel()
    assert abs(z.mean().item()) < 5 / math.sqrt(n)
    assert abs(z.var().item() - 1) < 5 * math.sqrt(2 / n)
    # The visible weight carries it.
    torch.testing.assert_close(arr.weight, arr.g - arr.ref + noise)


def test_kernel_column_steps_equal_the_counts_on_those_columns(monkeypatch):
    """The transfer's C writes: |n| pulses of sign(n) on column cols[r], as apply_counts_at gives them."""
    shape, n_p = (6, 9), 2
    cfg = dev("soft_bounds", dw_min_std=0.0)  # noise-free: both paths are deterministic
    cols = torch.tensor([7, 1, 4])
    steps = torch.randint(-3, 4, (n_p, shape[0], len(cols)), generator=gen(1)).float()
    compiled = DeviceArray(cfg, shape, gen(3), population=n_p)
    monkeypatch.setenv("ANALOG_TRAIN_KERNELS", "0")
    reference = DeviceArray(cfg, shape, gen(3), population=n_p)
    assert compiled.kernel_ready and not reference.kernel_ready
    compiled.apply_column_steps(cols, steps, gen(4))
    reference.apply_counts_at(cols, steps.clamp(min=0), (-steps).clamp(min=0), gen(4), sparse=True)
    torch.testing.assert_close(compiled.weight, reference.weight, rtol=0, atol=1e-6)
    torch.testing.assert_close(compiled.pulse_count, reference.pulse_count)
    assert compiled.pulse_count[:, :, cols].sum() == steps.abs().sum() > 0


@njit
def _abs_max_compiled(row):
    return kernels.abs_max(row)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_abs_max_over_the_bits_is_the_float_maximum(dtype) -> None:
    """kernels.abs_max compares sign-less bit patterns as integers; it must return numpy's max |x| exactly, in
    the row's precision, for signed zeros, tiny and huge values and an empty row."""
    rng = np.random.default_rng(3)
    rows = [rng.normal(size=n).astype(dtype) * 10.0 ** rng.integers(-30, 30) for n in (1, 7, 25, 400)]
    rows += [np.array([-0.0, 0.0], dtype=dtype), np.array([-3.5, 2.0, -1e-30], dtype=dtype), np.zeros(0, dtype=dtype)]
    for row in rows:
        got = _abs_max_compiled(row)
        assert got == (np.abs(row).max() if row.size else 0.0) and got >= 0


THREADS_PROBE = """
import sys
import numpy as np, numba, torch
first = sys.argv[1]
if first != "late":
    torch.set_num_threads(1)
from analog_train.crossbar import mvm_kernel
from analog_train.devices import kernels
if first == "late":  # the runner's order: the kernels are imported, then the run sets its count
    torch.set_num_threads(1)
g, zeros, counts = np.zeros(4, dtype=np.float32), np.zeros(4, dtype=np.float32), np.ones(4, dtype=np.float32)
rows = np.zeros((4, len(kernels.ROW_KEYS)), dtype=np.float32)
read = mvm_kernel.warm_up  # two reads through the periphery
update = lambda: kernels.apply_dense(g, zeros, zeros.copy(), rows, counts, counts, np.uint64(0), False, False)
bare = lambda: kernels._apply_dense(g, zeros, zeros.copy(), rows, counts, counts, np.uint64(0), False, False)
steps = {"read": [read, update], "update": [update, read], "bare": [bare, update, read], "late": [read, update]}[first]
for step in steps:
    step()
    if step is not bare:
        print(torch.get_num_threads(), numba.get_num_threads())
"""


def test_kernels_keep_the_runs_thread_count():
    """A run at ``threads=1`` (each job of a parallel sweep) stays at one thread in torch and in the kernels.

    numba's OpenMP layer can set the OpenMP runtime it shares with torch to all its threads when it
    starts them (here 2, whatever the machine); started by the first kernel call, that left torch at 2
    and the kernels followed. Each order a process can meet, in a fresh process (numba starts its
    threads once per process): a read, an update or a parallel kernel without the thread matching
    first, and torch's count set before or after the kernels are imported.
    """
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    for first in ("read", "update", "bare", "late"):
        out = subprocess.run([sys.executable, "-c", THREADS_PROBE, first], capture_output=True, text=True, env=env,
                             timeout=600)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["1"] * 4, f"{first} first: torch, numba threads after each kernel {out.stdout}"
