"""The compiled transfer (read, buffer rule, threshold; ``algorithms.transfer_kernel``) against torch.

The torch methods of ``TransferCompound`` and its subclasses are the reference: on the same
inputs the kernel must leave the same buffer, AGAD means and flags, and return the same reads and
C steps; whole noise-free training steps must agree with ``ANALOG_TRAIN_KERNELS=0``.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from analog_train.algorithms import build_algorithm, transfer_kernel
from analog_train.config import IOConfig, UpdateConfig, make_device
from configs import algo as make_algo
from analog_train.crossbar.io import ColumnRead

PERFECT = IOConfig(is_perfect=True)
DW = 0.01
IDEAL = make_device("constant_step", dw_min=DW, dw_min_std=0.0, dw_min_dtod=0.0, up_down_dtod=0.0,
                    w_max=10.0, w_min=-10.0, w_max_dtod=0.0, w_min_dtod=0.0)
DETERMINISTIC = UpdateConfig(desired_bl=2, update_bl_management=False, update_management=False)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def build(name, shape, population, **kw):
    base = dict(auto_scale=False, fast_lr=2 * DW, auto_granularity=100.0, transfer_every=1,
                transfer_forward=PERFECT, in_chop_prob=0.5, transfer_desired_bl=3)
    base.update(kw)
    alg = build_algorithm(make_algo(name, **base), IDEAL, shape, DETERMINISTIC, gen(0), gen(1), population=population)
    alg.set_weights(torch.zeros(population, *shape))
    return alg


def state(alg):
    names = ["H", "p", "p_ref", "switched"] if hasattr(alg, "p_ref") else ["H"]
    return {n: getattr(alg, n).clone() for n in names}


@pytest.mark.parametrize("name", ["ttv2", "cttv2", "agad"])
@pytest.mark.parametrize("forget", [True, False])
def test_compiled_transfer_equals_the_torch_buffer_step(name, forget):
    n_p, n_out, n_in = 2, 7, 9
    alg = build(name, (n_out, n_in), n_p, forget_buffer=forget, momentum=0.1)
    g = gen(5)
    alg.H.copy_(torch.randn(alg.H.shape, generator=g) * 1.5)  # many crossings, some beyond the BLT of 3
    alg.H.mul_(torch.where(torch.rand(alg.H.shape, generator=g) < 0.2, 3.0, 1.0))
    if name == "agad":
        alg.p.copy_(torch.randn(alg.H.shape, generator=g))
        alg.p_ref.copy_(torch.randn(alg.H.shape, generator=g))
        alg.switched.copy_(torch.rand(alg.switched.shape, generator=g) < 0.5)
    cols = torch.tensor([4, 0, 7, 2, 8])
    passes = torch.tensor([0, 1, 2, 3, 4])  # AGAD (period 2) may write from pass 2 on
    n_r = len(cols)
    columns = torch.randn(n_p, n_out, n_r, generator=g) * 0.5
    sign_in = torch.where(torch.rand(n_p, n_r, generator=g) < 0.5, -1.0, 1.0)
    sign_out = torch.where(torch.rand(n_p, n_r, n_out, generator=g) < 0.5, -1.0, 1.0)
    flips = torch.rand(n_p, n_r, generator=g) < 0.5
    sizes = torch.tensor([9, 9, 4, 5, 9])  # tile sizes enter lr_scale = scale size / eps_A
    scale, eps = 0.07, alg.A.eps
    lr_scale = scale * sizes.view(1, -1) / eps.view(-1, 1)

    before = state(alg)
    v = alg._transfer_read(columns)
    expected_steps = alg._buffer_step(cols, passes, v, sign_in.unsqueeze(1) * sign_out.transpose(1, 2),
                                      lr_scale.unsqueeze(1), flips if name != "ttv2" else None)
    expected = state(alg)
    for n, t in before.items():
        getattr(alg, n).copy_(t)

    run_mean, past_mean, switched, beta = alg._kernel_means()
    v_k, steps = transfer_kernel.transfer_columns(
        columns.numpy(), cols.numpy(), passes.numpy(), sizes.numpy(), sign_in.numpy(), sign_out.numpy(), flips.numpy(),
        scale, eps.numpy(), alg.first_write_pass, alg.H.numpy(), alg.kernel_rule, run_mean, past_mean, switched, beta,
        3.0, forget, 0.1, ColumnRead.of(PERFECT), np.uint64(7))
    torch.testing.assert_close(torch.from_numpy(v_k), v)
    assert (expected_steps != 0).sum() > 5 and expected_steps.abs().max() == 3
    torch.testing.assert_close(torch.from_numpy(steps), expected_steps)
    for n, t in expected.items():
        torch.testing.assert_close(getattr(alg, n), t, rtol=1e-5, atol=1e-6)
    if name == "agad":
        assert not bool((alg.switched == before["switched"]).all())


@pytest.mark.parametrize("name", ["ttv2", "cttv2", "agad"])
def test_compiled_path_trains_like_the_torch_path(monkeypatch, name):
    """Noise-free devices, every bit of the trains set, perfect reads, regular choppers: the paths agree.

    (Random chopper flips would differ: the two paths draw different amounts from the generator.)
    """
    shape, n_p = (5, 6), 2
    runs = []
    for kernels_on in (True, False):
        if not kernels_on:
            monkeypatch.setenv("ANALOG_TRAIN_KERNELS", "0")
        alg = build(name, shape, n_p, in_chop_prob=0.3, in_chop_random=False, transfer_every=2)
        assert alg._compiled == kernels_on
        g = gen(9)
        for _ in range(40):
            x = torch.where(torch.rand(n_p, 4, shape[1], generator=g) < 0.5, -1.5, 1.5)
            d = torch.where(torch.rand(n_p, 4, shape[0], generator=g) < 0.5, -1.5, 1.5)
            alg.update(x, d, 0.5)
        runs.append((alg.weight.clone(), alg.H.clone(), alg.c_in.clone(), alg.c_out.clone()))
    assert runs[0][0].abs().sum() > 0 and (name == "ttv2" or bool((runs[0][2] < 0).any()))
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("write_noise", [0.0, 0.3])
def test_kept_read_weight_follows_the_compiled_c_writes(write_noise):
    """The forward pass reads C's kept visible weight, which the fused kernel brings up to date where it
    writes C: after every step it equals C's weight computed afresh, bit for bit; other changes drop it."""
    shape, n_p = (5, 6), 2
    algo = make_algo("agad", auto_scale=False, fast_lr=2 * DW, auto_granularity=100.0, transfer_every=1,
                     transfer_forward=PERFECT, in_chop_prob=0.5, transfer_desired_bl=3)
    device = replace(IDEAL, write_noise_std=write_noise)
    alg = build_algorithm(algo, device, shape, DETERMINISTIC, gen(0), gen(1), population=n_p)
    alg.set_weights(torch.zeros(n_p, *shape))
    assert alg._fused
    kept = alg.read_weight()
    g = gen(9)
    for _ in range(30):
        x = torch.where(torch.rand(n_p, 4, shape[1], generator=g) < 0.5, -1.5, 1.5)
        d = torch.where(torch.rand(n_p, 4, shape[0], generator=g) < 0.5, -1.5, 1.5)
        alg.update(x, d, 0.5)
        assert alg.read_weight() is kept
        assert torch.equal(kept, alg.C.weight)
    assert float(alg.C.pulse_count.sum()) > 0 and float(kept.abs().sum()) > 0  # C was written
    alg.set_weights(torch.full((n_p, *shape), 0.05))
    assert alg.read_weight() is not kept and torch.equal(alg.read_weight(), alg.C.weight)


def test_compiled_auto_scale_equals_the_torch_rule(monkeypatch):
    """Running abs-maxima and eta_A of auto_scale: the compiled rule equals the torch one, batch by batch."""
    n_p, shape = 3, (4, 5)
    compiled = build("agad", shape, n_p, auto_scale=True, auto_momentum=0.9, fast_lr=0.1)
    monkeypatch.setenv("ANALOG_TRAIN_KERNELS", "0")
    reference = build("agad", shape, n_p, auto_scale=True, auto_momentum=0.9, fast_lr=0.1)
    assert compiled._compiled and not reference._compiled
    g = gen(3)
    for step in range(6):
        x = torch.randn(n_p, 7, shape[1], generator=g) * (step + 1)
        d = torch.randn(n_p, 7, shape[0], generator=g) * 0.1
        if step == 2:
            x[1] = 0.0  # a batch without input leaves replica 1's average alone
        if step == 0:
            d[2] = 0.0  # ... and replica 2's d average stays unset for one batch
        eta_c, eta_r = compiled._fast_lr(x, d), reference._fast_lr(x, d)
        torch.testing.assert_close(eta_c, eta_r, rtol=1e-5, atol=0)
        torch.testing.assert_close(compiled.m_x, reference.m_x, rtol=1e-5, atol=0)
        torch.testing.assert_close(compiled.m_d, reference.m_d, rtol=1e-5, atol=0)
    assert bool((reference.m_x > 0).all())


def test_compiled_choppers_equal_the_torch_choppers():
    """Per-sample chopper signs, the signs at each read and the choppers after the batch, with flips."""
    n_p, shape, batch = 3, (6, 10), 6
    alg = build("cttv2", shape, n_p, transfer_every=2, transfer_forward=IOConfig(is_perfect=True, max_input_size=4))
    alg.c_in.copy_(torch.where(torch.rand(alg.c_in.shape, generator=gen(1)) < 0.5, -1.0, 1.0))
    alg.c_out.copy_(torch.where(torch.rand(alg.c_out.shape, generator=gen(2)) < 0.5, -1.0, 1.0))
    reads = alg._schedule(batch)  # 3 events x 3 tiles (4 + 3 + 3 columns), sorted by sample
    assert len(reads) == 9 and reads.n_phases == 1
    g = gen(3)
    x, d = torch.randn(n_p, batch, shape[1], generator=g), torch.randn(n_p, batch, shape[0], generator=g)
    flips_in = torch.rand(n_p, len(reads), generator=g) < 0.5
    flips_out = torch.rand(n_p, len(reads), shape[0], generator=g) < 0.5
    c_in, c_out = alg.c_in.clone(), alg.c_out.clone()
    x_t, sign_in_t = alg._chop_inputs(x, reads, flips_in)
    d_t, sign_out_t = alg._chop_outputs(d, reads, flips_out)
    x_k, sign_in_k = transfer_kernel.chop_inputs(x.numpy(), c_in.numpy(), reads.sample.numpy(), reads.col.numpy(),
                                                 flips_in.numpy())
    d_k, sign_out_k = transfer_kernel.chop_outputs(d.numpy(), c_out.numpy(), reads.sample.numpy(), flips_out.numpy())
    for compiled, reference in ((x_k, x_t), (sign_in_k, sign_in_t), (d_k, d_t), (sign_out_k, sign_out_t),
                                (c_in, alg.c_in), (c_out, alg.c_out)):
        torch.testing.assert_close(torch.as_tensor(compiled), reference, rtol=0, atol=0)
    assert bool((x_t != x * alg.c_in.unsqueeze(1)).any())  # flips inside the batch acted
