"""Analog MVM periphery (SPEC 5): NM, DAC, output noise, ADC, iterative BM, tile splitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from analog_train.algorithms import ttv2
from analog_train.algorithms.transfer_kernel import TransferBuffers, TransferReads, TransferSettings
from analog_train.devices.kernels import DeviceState
from analog_train.config import IOConfig
from analog_train.crossbar.io import ColumnRead, analog_mvm, read_columns, split_sizes

RES_IN = 2.0 / 126.0  # preset DAC step on [-1, 1]
RES_OUT = 40.0 / 510.0  # preset ADC step on [-20, 20]


@pytest.fixture(autouse=True, params=["compiled", "torch"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on the compiled CPU read (crossbar.mvm_kernel) and on the torch implementation."""
    if request.param == "torch":
        monkeypatch.setenv("ANALOG_TRAIN_KERNELS", "0")
    return request.param


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def quiet(**kw: object) -> IOConfig:
    """No noise, no quantisation, no clipping in reach: the pipeline must reduce to the matmul."""
    base = dict(out_noise=0.0, inp_res=0.0, out_res=0.0, out_bound=1e6)
    base.update(kw)
    return IOConfig(**base)  # type: ignore[arg-type]


def matmul(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return x @ w.transpose(-1, -2)


def test_perfect_is_exactly_matmul() -> None:
    w, x = torch.randn(2, 5, 7), torch.randn(2, 3, 7)
    assert torch.equal(analog_mvm(w, x, IOConfig(is_perfect=True), gen()), matmul(w, x))


def test_quiet_periphery_is_matmul_for_split_and_padded_layers() -> None:
    torch.manual_seed(1)
    for n_in in (784, 785, 1537):  # 392 + 392; 393 + 392; 385 + 3 * 384 (three padded tiles)
        w, x = torch.randn(2, 300, n_in) * 0.1, torch.randn(2, 4, n_in)
        y = analog_mvm(w, x, quiet(), gen())
        assert y.shape == (2, 4, 300)
        torch.testing.assert_close(y, matmul(w, x), rtol=1e-4, atol=1e-4)


def test_quantisation_error_within_dac_adc_bound() -> None:
    """Without noise or clipping, |y - Wx| <= s_nm (res_in/2 * ||W_i||_1 + res_out/2)."""
    torch.manual_seed(2)
    w, x = torch.randn(1, 20, 50) * 0.3, torch.randn(1, 30, 50)
    io = IOConfig(out_noise=0.0, out_bound=100.0)
    res_out = io.out_res * 2 * io.out_bound
    y, exact = analog_mvm(w, x, io, gen()), matmul(w, x)
    s_nm = x.abs().amax(-1, keepdim=True)
    bound = s_nm * (RES_IN / 2 * w.abs().sum(-1).unsqueeze(1) + res_out / 2)
    err = (y - exact).abs()
    assert (err <= bound * (1 + 1e-5)).all()
    assert err.max() > 0.1 * bound.max()  # the converters do quantise


def test_dac_grid_and_input_clip() -> None:
    """An identity weight with an ideal ADC shows the DAC output: round(x/s/res)*res*s."""
    x = torch.tensor([[[1.0, 0.5, -0.3, 0.01, 0.004, -0.7, 0.123, 0.0]]])
    eye = torch.eye(8).unsqueeze(0)
    y = analog_mvm(eye, x, IOConfig(out_noise=0.0, out_res=0.0), gen())
    torch.testing.assert_close(y, torch.round(x / RES_IN) * RES_IN, rtol=0, atol=1e-6)
    assert y[0, 0, 4] == 0  # below half a step
    # without NM the input bound clips: 3 -> 1, -2 -> -1
    x = torch.tensor([[[3.0, -2.0, 0.3]]])
    io = IOConfig(out_noise=0.0, out_res=0.0, noise_management="none")
    y = analog_mvm(torch.eye(3).unsqueeze(0), x, io, gen())
    torch.testing.assert_close(y, torch.tensor([[[1.0, -1.0, 19 * RES_IN]]]), rtol=0, atol=1e-6)


def test_output_noise_std_after_undoing_nm_scale() -> None:
    """W = 0, abs-max 2.5: the output is pure noise of std out_noise * 2.5 (ideal ADC)."""
    n_b, n_out, s = 5000, 8, 2.5
    x = torch.full((1, n_b, 16), s)
    y = analog_mvm(torch.zeros(1, n_out, 16), x, IOConfig(out_res=0.0), gen(3))
    n = y.numel()
    sigma = 0.1 * s
    se_std = sigma / math.sqrt(2 * n)
    assert abs(y.std().item() - sigma) < 4 * se_std
    assert abs(y.mean().item()) < 4 * sigma / math.sqrt(n)
    # every output gets its own draw
    c = torch.corrcoef(y[0].T)
    assert (c - torch.eye(n_out)).abs().max() < 5 / math.sqrt(n_b)


def test_input_noise_std() -> None:
    """Identity weight, ideal converters: y = s_nm * (1 + inp_noise * xi)."""
    n_b, s = 5000, 0.5
    io = IOConfig(inp_noise=0.05, inp_res=0.0, out_res=0.0, out_noise=0.0)
    y = analog_mvm(torch.eye(4).unsqueeze(0), torch.full((1, n_b, 4), s), io, gen(16))
    sigma = 0.05 * s
    assert abs(y.std().item() - sigma) < 4 * sigma / math.sqrt(2 * y.numel())
    assert abs(y.mean().item() - s) < 4 * sigma / math.sqrt(y.numel())


def test_adc_grid_in_transfer_read() -> None:
    """One-hot reads with NM and BM off (transfer read): columns of W on the ADC grid."""
    torch.manual_seed(4)
    w = torch.rand(1, 6, 5) * 2 - 1
    io = IOConfig(out_noise=0.0, noise_management="none", bound_management="none")
    y = analog_mvm(w, torch.eye(5).unsqueeze(0), io, gen())
    torch.testing.assert_close(y, torch.round(w.transpose(-1, -2) / RES_OUT) * RES_OUT, rtol=0, atol=1e-6)


READ_IOS = [
    IOConfig(out_noise=0.0, noise_management="none", bound_management="none"),
    IOConfig(out_noise=0.0, inp_res=0.0, out_res=0.0, out_bound=0.3),
    IOConfig(out_noise=0.06, inp_noise=0.05, noise_management="abs_max", bound_management="none"),
    IOConfig(out_noise=0.06, inp_res=1 / 8.0, out_res=0.0, out_bound=1e6),
]


def compiled_read(columns: torch.Tensor, io: IOConfig) -> torch.Tensor:
    """The read of the compiled transfer (TTv2's step, nothing accumulated or written): its returned ``v``."""
    n_p, n_out, n_r = columns.shape
    f32 = np.float32
    index = np.arange(n_r)
    reads = TransferReads(index, index, index + 1, np.zeros((n_p, n_r), dtype=np.bool_), np.ones((n_p, n_r), dtype=f32),
                          np.ones((n_p, n_r, n_out), dtype=f32))
    buffers = TransferBuffers(np.zeros((n_p, n_out, n_r), dtype=f32), np.zeros((0, 0, 0), dtype=f32),
                              np.zeros((0, 0, 0), dtype=f32), np.zeros((0, 0), dtype=np.bool_))
    settings = TransferSettings(0.0, np.ones(n_p, dtype=f32), n_r, 0.0, 1.0, True, 0.0, ColumnRead.of(io))
    n = n_p * n_out * n_r
    zeros = np.zeros(n, dtype=f32)
    c = DeviceState(zeros, zeros.copy(), zeros.copy(), np.zeros((n, 8), dtype=f32), zeros.copy(), np.zeros(0, dtype=f32),
                    False, False)
    return torch.from_numpy(ttv2.transfer_step(columns.numpy(), reads, buffers, settings, c, np.uint64(11)))


@pytest.mark.parametrize("io", READ_IOS)
@pytest.mark.parametrize("compiled", [False, True])
def test_read_columns_is_the_one_hot_analog_read(io: IOConfig, compiled: bool) -> None:
    """The transfer's column read is analog_mvm of each column as a one-input tile with input 1.

    Exactly without noise, in mean and std with it. (Input noise then acts on the read input only,
    as in aihwkit's one-hot transfer read where the other inputs are exact zeros.) Both for
    ``read_columns`` and for the compiled transfer's read.
    """
    reps = 4000
    w = (torch.rand(1, 6, 3, generator=gen(1)) * 2 - 1).expand(reps, -1, -1).contiguous()
    cols = w.permute(0, 2, 1).reshape(reps * 3, 6, 1)
    via_mvm = analog_mvm(cols, torch.ones(reps * 3, 1, 1), io, gen(2), bound_management=False)
    via_mvm = via_mvm.view(reps, 3, 6).transpose(1, 2)  # (P, out, R)
    direct = compiled_read(w.clone(), io) if compiled else read_columns(w.clone(), io, gen(3))
    if io.out_noise == 0 and io.inp_noise == 0:
        torch.testing.assert_close(direct, via_mvm, rtol=0, atol=1e-6)
        return
    se = torch.sqrt((direct.var(0) + via_mvm.var(0)) / reps)
    assert ((direct.mean(0) - via_mvm.mean(0)).abs() <= 5 * se).all()
    assert ((direct.std(0) / via_mvm.std(0) - 1).abs() < 5 * math.sqrt(1 / reps)).all()


def test_adc_clips_without_bound_management() -> None:
    w = torch.cat([torch.full((1, 2, 10), 5.0), torch.full((1, 2, 10), -5.0)], 1)  # y = +-50
    x = torch.ones(1, 3, 10)
    for io, bm in ((IOConfig(), False), (IOConfig(bound_management="none"), True)):
        y = analog_mvm(w, x, io, gen(), bound_management=bm)
        expected = torch.tensor([20.0, 20.0, -20.0, -20.0]).expand(1, 3, 4)
        assert torch.equal(y, expected)


def test_bound_management_recovers_clipped_output() -> None:
    """y = 50 clips at 20 twice; the third round (s_bm = 4) reads 12.5 and rescales it."""
    w, x = torch.full((1, 3, 10), 5.0), torch.ones(1, 200, 10)
    y = analog_mvm(w, x, IOConfig(), gen(5))
    u = torch.round(torch.tensor(0.25) / RES_IN) * RES_IN  # DAC value of 1 / (s_nm * s_bm)
    mean = 4 * 50 * u  # what the rescaled read converges to
    sigma = 4 * 0.1  # noise scaled up by s_bm
    assert (y - mean).abs().max() < 5 * sigma + 4 * RES_OUT / 2
    se_mean = math.sqrt(sigma**2 + (4 * RES_OUT) ** 2 / 12) / math.sqrt(y.numel())  # noise + ADC rounding
    assert abs(y.mean().item() - mean.item()) < 4 * se_mean


@pytest.mark.parametrize(
    ("scale", "io", "last_factor"),
    [
        (1000.0, IOConfig(), 16),  # 1, 2, 4, 8, 16 > 0.25 / (2/126): 5 rounds
        (1000.0, IOConfig(max_bm_factor=4.0), 8),  # the round with s_bm = 4 does not exceed it
        (1e5, IOConfig(inp_res=0.0), 1024),  # only max_bm_factor = 1000 limits: 11 rounds
    ],
)
def test_bound_management_stops_after_max_rounds(scale: float, io: IOConfig, last_factor: int) -> None:
    y = analog_mvm(torch.full((1, 2, 10), scale), torch.ones(1, 4, 10), io, gen())
    torch.testing.assert_close(y, torch.full_like(y, 20.0 * last_factor))


def test_bound_management_only_rereads_failing_samples_and_replicas(implementation: str) -> None:
    """The same seed with BM on and off must give identical results where nothing clipped."""
    torch.manual_seed(6)
    w = torch.randn(2, 4, 30) * 0.05
    w[1, 2] = 3.0  # replica 1, output 2 clips when most inputs are near their abs-max
    x = torch.rand(2, 6, 30) * 0.1
    x[:, :, 0] = 1.0  # after NM these samples sum to about 2.5: y = 7.5, no clip
    x[:, 3] = torch.rand(30) + 1.0  # sample 3 sums to about 22: y = 66 clips in replica 1 only
    on, off = analog_mvm(w, x, IOConfig(), gen(7)), analog_mvm(w, x, IOConfig(), gen(7), bound_management=False)
    changed = (on != off).any(-1)
    assert changed[1, 3] and changed.sum() == 1
    true = 3 * x[1, 3].sum()
    torch.testing.assert_close(off[1, 3, 2], 20 * x[1, 3].max())
    assert abs(on[1, 3, 2] - true) < 0.02 * true


def test_bound_management_per_output_tile(implementation: str) -> None:
    """Two output tiles (300 + 300): only the clipping tile is re-read, the other keeps its read."""
    torch.manual_seed(8)
    w = torch.randn(1, 600, 20) * 0.05
    w[0, 10] = 2.0  # output tile 0 clips (y = 40)
    x = torch.ones(1, 3, 20)
    io = IOConfig(max_output_size=512)
    on, off = analog_mvm(w, x, io, gen(9)), analog_mvm(w, x, io, gen(9), bound_management=False)
    assert torch.equal(on[..., 300:], off[..., 300:])
    assert not torch.equal(on[..., :300], off[..., :300])
    assert (on[..., 10] - 40).abs().max() < 2.0 and (off[..., 10] == 20).all()


def test_backward_with_transposed_weight() -> None:
    torch.manual_seed(10)
    w, d = torch.randn(1, 6, 4), torch.randn(1, 3, 6)
    y = analog_mvm(w.transpose(-1, -2), d, quiet(), gen(), bound_management=False)
    torch.testing.assert_close(y, d @ w, rtol=1e-5, atol=1e-5)
    # the backward never bound-manages, even with an iterative IOConfig
    w_big = torch.full((1, 6, 4), 10.0)
    d = torch.ones(1, 2, 6)
    y = analog_mvm(w_big.transpose(-1, -2), d, IOConfig(), gen(), bound_management=False)
    assert torch.equal(y, torch.full((1, 2, 4), 20.0))


def test_split_sizes_follow_aihwkit() -> None:
    assert split_sizes(784, 512) == [392, 392]
    assert split_sizes(785, 512) == [393, 392]
    assert split_sizes(512, 512) == [512]
    assert split_sizes(1100, 512) == [367, 367, 366]
    assert split_sizes(1537, 512) == [385, 384, 384, 384]


def test_tile_splitting_gives_each_tile_its_own_noise_management() -> None:
    """Tile 1 (inputs 392..783) sees only 1e-3: under one global abs-max they would quantise to 0."""
    w = torch.zeros(1, 300, 784)
    w[0, :, 392:] = 0.01
    x = torch.cat([torch.ones(1, 2, 392), torch.full((1, 2, 392), 1e-3)], -1)
    y = analog_mvm(w, x, IOConfig(out_noise=0.0), gen())
    assert y.shape == (1, 2, 300)
    true = 392 * 0.01 * 1e-3
    assert (y - true).abs().max() < 0.02 * true
    # the same layer in one tile loses them
    y_one = analog_mvm(w, x, IOConfig(out_noise=0.0, max_input_size=1024), gen())
    assert (y_one == 0).all()


def test_zero_input_gives_zero_output() -> None:
    torch.manual_seed(11)
    w, x = torch.randn(1, 300, 784), torch.randn(1, 3, 784)
    x[0, 1] = 0
    y = analog_mvm(w, x, IOConfig(), gen())
    assert (y[0, 1] == 0).all() and (y[0, [0, 2]] != 0).any()
    assert (analog_mvm(w, torch.zeros(1, 2, 784), IOConfig(noise_management="none"), gen()) != 0).any()


def test_same_seed_same_numbers() -> None:
    torch.manual_seed(12)
    w, x = torch.randn(1, 50, 784) * 3, torch.randn(1, 8, 784)  # BM active too
    a, b = analog_mvm(w, x, IOConfig(), gen(13)), analog_mvm(w, x, IOConfig(), gen(13))
    assert torch.equal(a, b)
    assert not torch.equal(a, analog_mvm(w, x, IOConfig(), gen(14)))


def test_replicas_use_their_own_weights() -> None:
    torch.manual_seed(15)
    w, x = torch.randn(3, 7, 9), torch.randn(3, 4, 9)
    torch.testing.assert_close(analog_mvm(w, x, quiet(), gen()), matmul(w, x), rtol=1e-5, atol=1e-5)
    y = analog_mvm(w, x, IOConfig(), gen())
    for p in range(3):
        alone = analog_mvm(w[p : p + 1], x[p : p + 1], IOConfig(out_noise=0.0), gen())
        assert (y[p] - alone[0]).abs().max() < 1.0  # differs from the other replicas' results
        others = [q for q in range(3) if q != p]
        assert all((y[p] - matmul(w[q], x[q])).abs().max() > 1.0 for q in others)


def test_float64_and_input_noise() -> None:
    w, x = torch.randn(1, 5, 7, dtype=torch.float64), torch.randn(1, 3, 7, dtype=torch.float64)
    y = analog_mvm(w, x, IOConfig(inp_noise=0.01), gen())
    assert y.dtype == torch.float64
    assert (y - matmul(w, x)).abs().max() < 1.0


@pytest.mark.parametrize("transposed", [False, True])
def test_compiled_read_equals_the_torch_read(implementation: str, monkeypatch: pytest.MonkeyPatch,
                                             transposed: bool) -> None:
    """Preset periphery, two input tiles, noise-free: the same ADC levels up to summation-order ties;
    with noise: the same mean and spread."""
    if implementation == "torch":
        pytest.skip("compares the two implementations itself")
    g = gen(12)
    w = torch.randn(1, 300, 700, generator=g) * 0.05
    x = torch.randn(1, 8, 300 if transposed else 700, generator=g)
    x[0, 0] = 0.0  # an all-zero sample reads 0
    weight = w.transpose(-1, -2) if transposed else w
    quiet_io = IOConfig(out_noise=0.0, bound_management="none")
    compiled = analog_mvm(weight, x, quiet_io, gen(1))
    monkeypatch.setenv("ANALOG_TRAIN_KERNELS", "0")
    reference = analog_mvm(weight, x, quiet_io, gen(1))
    step = x.abs().amax(-1, keepdim=True) * RES_OUT  # one ADC step per tile, after NM
    off = (compiled - reference).abs() > 1e-5
    assert off.float().mean() < 0.01 and bool(((compiled - reference).abs() <= 2.01 * step).all())
    assert bool((compiled[0, 0] == 0).all())
    monkeypatch.delenv("ANALOG_TRAIN_KERNELS")
    reps = 400
    xs = x[:, 1:3].expand(reps, -1, -1).contiguous()
    ws = weight.expand(reps, -1, -1)
    noisy_io = IOConfig(inp_noise=0.02, bound_management="none")
    compiled = analog_mvm(ws.contiguous() if not transposed else w.expand(reps, -1, -1).contiguous().transpose(-1, -2),
                          xs, noisy_io, gen(2))
    monkeypatch.setenv("ANALOG_TRAIN_KERNELS", "0")
    reference = analog_mvm(ws, xs, noisy_io, gen(3))
    se = torch.sqrt((compiled.var(0) + reference.var(0)) / reps)
    assert ((compiled.mean(0) - reference.mean(0)).abs() <= 5 * se + 1e-6).float().mean() > 0.999
    ratio = compiled.std(0) / reference.std(0)
    assert ((ratio - 1).abs() < 5 * math.sqrt(1 / reps)).float().mean() > 0.999
