"""The compiled transfer (read, buffer rule, threshold; ``algorithms.transfer_kernel``) against torch.

The torch methods of ``TransferCompound`` and its subclasses are the reference: on the same
inputs the kernel must leave the same buffer, AGAD means and flags, and return the same reads and
C steps; whole noise-free training steps must agree with ``ANALOG_TRAIN_KERNELS=0``.
"""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from analog_train.algorithms import build_algorithm, transfer_kernel
from analog_train.algorithms.transfer import Reads
from analog_train.algorithms.transfer_kernel import TransferBuffers, TransferReads
from analog_train.config import IOConfig, UpdateConfig, make_device
from configs import algo as make_algo

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


def randomise(alg, g):
    """Buffers with many threshold crossings (some beyond the BLT of 3) and, for AGAD, random means and flags."""
    alg.H.copy_(torch.randn(alg.H.shape, generator=g) * 1.5)
    alg.H.mul_(torch.where(torch.rand(alg.H.shape, generator=g) < 0.2, 3.0, 1.0))
    if alg.p is not None:
        alg.p.copy_(torch.randn(alg.H.shape, generator=g))
        alg.p_ref.copy_(torch.randn(alg.H.shape, generator=g))
        alg.switched.copy_(torch.rand(alg.switched.shape, generator=g) < 0.5)


def state(alg):
    names = ["H", "p", "p_ref", "switched"] if alg.p is not None else ["H"]
    return {n: getattr(alg, n).clone() for n in names} | {"C": alg.C.weight.clone()}


@pytest.mark.parametrize("name", ["ttv2", "cttv2", "agad"])
@pytest.mark.parametrize("forget", [True, False])
def test_compiled_transfer_equals_the_torch_transfer(name, forget):
    """The algorithm's compiled transfer pass (its own rule) and the torch rounds leave the same buffer,
    AGAD means and flags and C, on a chunk that reads some columns several times."""
    n_p, n_out, n_in = 2, 7, 9
    alg = build(name, (n_out, n_in), n_p, forget_buffer=forget, momentum=0.1)
    g = gen(5)
    randomise(alg, g)
    cols = np.array([4, 0, 7, 2, 8, 0, 4, 4, 1, 2])
    n_r = len(cols)
    passes = np.array([0, 1, 2, 3, 4, 4, 5, 6, 6, 7])  # AGAD (period 2) may write from pass 2 on
    sizes = np.array([9, 9, 4, 5, 9, 9, 9, 9, 9, 5])  # tile sizes enter lr_scale = scale size / eps_A
    reads = Reads(np.stack([np.arange(n_r), cols, passes, sizes, np.zeros(n_r, dtype=np.int64)]), 0, torch.device("cpu"))
    raw = torch.randn(n_p, n_out, n_r, generator=g) * 0.5
    sign_in = torch.where(torch.rand(n_p, n_r, generator=g) < 0.5, -1.0, 1.0)
    sign_out = torch.where(torch.rand(n_p, n_r, n_out, generator=g) < 0.5, -1.0, 1.0)
    flips = torch.rand(n_p, n_r, generator=g) < 0.5
    lr = 0.07 * 100.0

    before = state(alg)
    alg._transfer(raw, reads, sign_in, sign_out, flips, lr)  # perfect reads: v = raw
    expected = state(alg)
    for n, t in before.items():
        if n == "C":
            alg.C.set_weights(t)
        else:
            getattr(alg, n).copy_(t)
    assert torch.equal(alg.C.weight, before["C"])

    empty3, empty2 = np.zeros((0, 0, 0), dtype=np.float32), np.zeros((0, 0), dtype=np.bool_)
    buffers = TransferBuffers(alg.H.numpy(), empty3 if alg.p is None else alg.p.numpy(),
                              empty3 if alg.p is None else alg.p_ref.numpy(),
                              empty2 if alg.p is None else alg.switched.numpy())
    v = type(alg).compiled_step(raw.numpy(), TransferReads(cols, passes, sizes, flips.numpy(), sign_in.numpy(),
                                                           sign_out.numpy()),
                                buffers, alg._transfer_settings(lr), alg.C.kernel_state(keep_visible=True), np.uint64(7))
    torch.testing.assert_close(torch.from_numpy(v), raw)
    assert (expected["C"] != before["C"]).sum() > 5  # C was written, some elements more than once
    for n, t in expected.items():
        torch.testing.assert_close(alg.C.weight if n == "C" else getattr(alg, n), t, rtol=1e-5, atol=1e-6)
    if name == "agad":
        assert not bool((alg.switched == before["switched"]).all())


def run_batches(name, kernels_on, monkeypatch, batch, steps, chunk=None, **kw):
    """Noise-free devices, every bit of the trains set, perfect reads, regular choppers: deterministic."""
    monkeypatch.setenv("ANALOG_TRAIN_KERNELS", "1" if kernels_on else "0")
    if chunk:
        monkeypatch.setattr(transfer_kernel, "CHUNK_SAMPLES", chunk)
    shape, n_p = (5, 6), 2
    alg = build(name, shape, n_p, in_chop_prob=0.3, in_chop_random=False, **kw)
    assert alg._compiled == kernels_on
    g = gen(9)
    for _ in range(steps):
        x = torch.where(torch.rand(n_p, batch, shape[1], generator=g) < 0.5, -1.5, 1.5)
        d = torch.where(torch.rand(n_p, batch, shape[0], generator=g) < 0.5, -1.5, 1.5)
        alg.update(x, d, 0.5)
    return alg


def snapshot(alg):
    out = [alg.weight.clone(), alg.fast_weight.clone(), alg.H.clone(), alg.c_in.clone(), alg.c_out.clone()]
    return out + ([alg.p.clone(), alg.p_ref.clone()] if alg.p is not None else [])


@pytest.mark.parametrize("name", ["ttv2", "cttv2", "agad"])
@pytest.mark.parametrize("batch,every,chunk", [(4, 2, None), (23, 1, None), (23, 1, 7)])
def test_compiled_path_trains_like_the_torch_path(monkeypatch, name, batch, every, chunk):
    """Whole mini-batches, also with several reads of a column per batch (23 samples, 6 columns) and
    batches cut into chunks: the compiled path and the torch path agree.

    (Random chopper flips would differ: the two paths draw different numbers.)
    """
    runs = [snapshot(run_batches(name, on, monkeypatch, batch, 160 // batch, chunk, transfer_every=every))
            for on in (True, False)]
    assert runs[0][0].abs().sum() > 0 and (name == "ttv2" or bool((runs[0][3] < 0).any()))
    for a, b in zip(*runs):  # float32 sums of steps grouped into runs in another order: ~1e-5
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("name", ["ttv2", "cttv2", "agad"])
@pytest.mark.parametrize("kernels_on", [True, False])
def test_many_reads_per_batch_equal_processing_the_samples_one_by_one(monkeypatch, name, kernels_on):
    """A batch of 60 samples reads each of the 6 columns 10 times (and is cut into chunks of 16): it
    ends exactly where 60 single-sample updates end (noise-free devices, deterministic trains)."""
    batched = run_batches(name, kernels_on, monkeypatch, 60, 3, chunk=16)
    single = build(name, (5, 6), 2, in_chop_prob=0.3, in_chop_random=False)
    g = gen(9)
    for _ in range(3):
        x = torch.where(torch.rand(2, 60, 6, generator=g) < 0.5, -1.5, 1.5)
        d = torch.where(torch.rand(2, 60, 5, generator=g) < 0.5, -1.5, 1.5)
        for b in range(60):
            single.update(x[:, b:b + 1], d[:, b:b + 1], 0.5)
    assert batched.C.pulse_count.sum() > 0 and batched.last_reads.rank.max() == 9
    for a, b in zip(snapshot(batched), snapshot(single)):  # float32 sums of counts in another order: ~1e-5
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-5)


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
    assert alg._compiled
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
    assert len(reads) == 9
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


MEMORY_PROBE = """
import sys, torch
from analog_train.algorithms import build_algorithm, transfer_kernel
from analog_train.config import UpdateConfig, make_algo, make_device
torch.set_num_threads(1)
alg = build_algorithm(make_algo("agad", in_chop_prob=0.1), make_device("soft_bounds", n_states=20), (64, 32), UpdateConfig(),
                      torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
g = torch.Generator().manual_seed(2)
alg.update(torch.randn(1, 64, 32, generator=g), torch.randn(1, 64, 64, generator=g) * 0.1, 0.1)  # compile / load
batch, chunk = int(sys.argv[1]), int(sys.argv[2])
transfer_kernel.CHUNK_SAMPLES = chunk
x, d = torch.randn(1, batch, 32, generator=g), torch.randn(1, batch, 64, generator=g) * 0.1

def status(key):
    return int(next(line for line in open("/proc/self/status") if line.startswith(key)).split()[1])

open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts from the current size
before = status("VmRSS")
alg.update(x, d, 0.1)
print(status("VmHWM") - before)
"""


def peak_kib(batch: int, chunk: int) -> int:
    """Peak resident memory an update of ``batch`` samples adds to the process, in chunks of ``chunk``."""
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(batch), str(chunk)], capture_output=True, text=True)
    if out.returncode != 0 and "clear_refs" in out.stderr:
        pytest.skip("this kernel does not let a process reset its peak memory (/proc/self/clear_refs)")
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_a_large_mini_batch_does_not_grow_the_transfer_temporaries():
    """A 64x32 AGAD layer with a read every sample: from 2 to 16 chunks' samples, the peak memory an update
    adds beyond its inputs grows only by the batch's read schedule (a few integers per read, under 128
    bytes per sample), not by the chunks' pulse trains and reads (about 2 KB per sample), which the same
    update in one chunk shows."""
    chunk = transfer_kernel.CHUNK_SAMPLES
    small, large = peak_kib(2 * chunk, chunk), peak_kib(16 * chunk, chunk)
    schedule_kib = (16 - 2) * chunk * 128 // 1024  # 128 bytes for each sample the large batch adds
    assert large - small < schedule_kib, (small, large)
    assert peak_kib(16 * chunk, 10**9) - small > 4 * schedule_kib  # the same update without chunks
