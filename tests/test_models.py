"""Analog layers on one base (linear, conv, LSTM), the models built from them, and the config combinations."""

import itertools
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from analog_train.algorithms import build_algorithm
from analog_train.config import ConfigError, IOConfig, UpdateConfig, compose_config, make_algo, make_device
from analog_train.nn.layers import AnalogConv2d, AnalogLayer, AnalogLinear, analog_layers
from analog_train.nn.lstm import LSTMLayer
from analog_train.config import MODELS
from analog_train.nn.models import DataSpec
from analog_train.nn.optimizer import AnalogSGD
from analog_train.nn.tiles import AnalogLayers, DigitalLayers
from analog_train.runner.train import build_network

PERFECT = IOConfig(is_perfect=True)
IDEAL = make_device("constant_step", dw_min=0.001, dw_min_std=0.0, dw_min_dtod=0.0, up_down_dtod=0.0,
                     w_max=10.0, w_min=-10.0, w_max_dtod=0.0, w_min_dtod=0.0)
SGD = make_algo("sgd")
UPDATE = UpdateConfig()


def gen(seed):
    return torch.Generator().manual_seed(seed)


def ideal_layers(population=1, io=PERFECT, algo=SGD, device=IDEAL, update=UPDATE):
    def make(index, shape):
        run = gen(100 + index)
        return build_algorithm(algo, device, shape, update, gen(index), run, population=population), run
    return AnalogLayers(make, io, gen(7), population)


def test_conv_with_perfect_io_equals_torch_conv2d():
    """Forward and input gradient of AnalogConv2d (perfect periphery) are F.conv2d's with the same weights."""
    layer = ideal_layers(population=2).conv2d(3, 4, 3)
    x = torch.randn(5, 3, 7, 6, generator=gen(1), requires_grad=True)
    y = layer(x)  # (P, B, 4, 5, 4)
    assert y.shape == (2, 5, 4, 5, 4)
    for p in range(2):
        w = layer.weight[p].reshape(4, 3, 3, 3)
        ref = F.conv2d(x, w, layer.bias[p].view(-1))
        torch.testing.assert_close(y[p], ref, rtol=1e-5, atol=1e-5)
    upstream = torch.randn(y.shape, generator=gen(2))
    (grad,) = torch.autograd.grad((y * upstream).sum(), x)
    x_ref = x.detach().clone().requires_grad_(True)
    ref_total = sum((F.conv2d(x_ref, layer.weight[p].reshape(4, 3, 3, 3)) * upstream[p]).sum() for p in range(2))
    (grad_ref,) = torch.autograd.grad(ref_total, x_ref)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-5)


def test_digital_conv_matches_the_analog_layout():
    """The fp factory's conv draws the same initial weights and returns the same (P, B, C, H, W) layout."""
    analog = ideal_layers().conv2d(2, 3, 3)
    digital = DigitalLayers(gen(7)).conv2d(2, 3, 3)
    torch.testing.assert_close(digital.weight.reshape(3, -1), analog.weight[0])
    torch.testing.assert_close(digital.bias, analog.bias.view(-1))
    x = torch.randn(4, 2, 6, 6, generator=gen(3))
    torch.testing.assert_close(digital(x), analog(x), rtol=1e-5, atol=1e-5)


def test_conv_update_equals_the_update_of_the_unfolded_linear_layer():
    """A conv layer's pulsed update is the linear tile's update with every patch as one sample."""
    device = replace(IDEAL, dw_min_std=0.3, dw_min_dtod=0.2, w_max=1.0, w_min=-1.0)
    conv = ideal_layers(device=device).conv2d(2, 3, 3)
    linear = ideal_layers(device=device).linear(18, 3)
    with torch.no_grad():
        linear.bias.zero_()
    conv.algorithm.set_weights(linear.weight.clone())
    x = torch.randn(4, 2, 5, 5, generator=gen(4))
    upstream = torch.randn(1, 4, 3, 3, 3, generator=gen(5))
    (conv(x) * upstream).sum().backward()
    patches = F.unfold(x, 3).transpose(1, 2).reshape(1, -1, 18)  # (1, B L, in), image-major
    (linear(patches) * upstream.flatten(3).transpose(2, 3).reshape(1, -1, 3)).sum().backward()
    before = conv.weight.clone()
    for layer in (conv, linear):
        layer.apply_update(0.5)
    assert not torch.equal(before, conv.weight)  # the step did pulse
    torch.testing.assert_close(conv.weight, linear.weight, rtol=0, atol=0)


def test_lstm_with_perfect_io_equals_torch_lstm():
    """Two analog LSTM layers (combined-weight cell, perfect periphery) compute torch.nn.LSTM's outputs
    and states with the same weights (W = [W_ih, W_hh], bias_ih = the digital bias, bias_hh = 0)."""
    n_in, hidden, steps, batch = 5, 4, 6, 3
    layers = ideal_layers()
    rnn = torch.nn.ModuleList([LSTMLayer(n_in, hidden, layers), LSTMLayer(hidden, hidden, layers)])
    ref = torch.nn.LSTM(n_in, hidden, num_layers=2)
    with torch.no_grad():
        for i, layer in enumerate(rnn):
            w = layer.gates.weight[0]
            split = n_in if i == 0 else hidden
            getattr(ref, f"weight_ih_l{i}").copy_(w[:, :split])
            getattr(ref, f"weight_hh_l{i}").copy_(w[:, split:])
            getattr(ref, f"bias_ih_l{i}").copy_(layer.gates.bias.view(-1))
            getattr(ref, f"bias_hh_l{i}").zero_()
    xs = torch.randn(steps, batch, n_in, generator=gen(6))
    h0 = torch.randn(2, batch, hidden, generator=gen(7)) * 0.5
    c0 = torch.randn(2, batch, hidden, generator=gen(8)) * 0.5
    out, states = xs, []
    for i, layer in enumerate(rnn):
        out, state = layer(out, (h0[i:i + 1], c0[i:i + 1]))
        states.append(state)
    out_ref, (h_ref, c_ref) = ref(xs, (h0, c0))
    torch.testing.assert_close(out[0], out_ref, rtol=1e-5, atol=1e-5)
    for i, (h, c) in enumerate(states):
        torch.testing.assert_close(h[0], h_ref[i], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(c[0], c_ref[i], rtol=1e-5, atol=1e-5)


def test_lstm_update_receives_every_time_step_in_forward_order():
    """The gate tile reads once per time step; the update gets all (x, d) pairs, time-major, as one batch."""
    layer = LSTMLayer(3, 2, ideal_layers())
    seen = []
    layer.gates.algorithm.update = lambda x, d, lr: seen.append((x.clone(), d.clone()))
    xs = torch.randn(4, 5, 3, generator=gen(9))
    out, _ = layer(xs, layer.initial_state(5))
    out.sum().backward()
    layer.gates.apply_update(0.1)
    (x, d), = seen
    assert x.shape == (1, 4 * 5, 3 + 2) and d.shape == (1, 4 * 5, 8)
    torch.testing.assert_close(x[0, :, :3], xs.reshape(-1, 3))  # the inputs of steps 0, 1, 2, 3 in order
    assert torch.equal(x[0, :5, 3:], torch.zeros(5, 2))  # step 0 sees the zero initial state


@pytest.mark.parametrize("name,spec,params", [
    ("fc", DataSpec("image", 10, (1, 28, 28)), 235_146),
    ("lenet5", DataSpec("image", 10, (1, 28, 28)), 80_202),
    ("lstm", DataSpec("text", 84), 76_628),
])
def test_model_sizes(name, spec, params):
    """The paper's networks (SPEC 6), counted on the digital build (analog tiles hold the same weights)."""
    cfg = compose_config([f"model={name}", "algo=fp"])
    model = build_network(cfg, spec)
    assert sum(p.numel() for p in model.parameters()) == params
    analog = build_network(compose_config([f"model={name}", "algo=sgd", "device=softbounds"]), spec)
    n_analog = sum(layer.weight.numel() + layer.bias.numel() for layer in analog_layers(analog))
    assert n_analog == params and all(isinstance(m, AnalogLayer) for m in analog_layers(analog))
    assert len(AnalogSGD(analog, 0.1).analog_layers) == len(analog_layers(analog))


DATA = {"mnist": "image", "fashion_mnist": "image", "digits": "image", "war_and_peace": "text"}


@pytest.mark.parametrize("model,data", list(itertools.product(MODELS.schemas, DATA)))
def test_every_model_and_data_pair_composes_or_is_refused_in_one_line(model, data):
    for algo in ("fp", "sgd", "ttv2", "cttv2", "agad"):
        overrides = [f"model={model}", f"data={data}", f"algo={algo}", "device=softbounds"]
        fits = MODELS.schemas[model].DATA_KIND == DATA[data] and not (model == "lenet5" and data == "digits")
        if fits:
            compose_config(overrides)
        else:
            with pytest.raises(ConfigError) as err:
                compose_config(overrides)
            assert "\n" not in str(err.value) and str(err.value).startswith("model.")


def test_lstm_model_picks_its_data_set_and_schedule():
    cfg = compose_config(["model=lstm"])
    assert cfg.data.name == "war_and_peace" and cfg.data.batch_size == 32 and cfg.train.clip_grad_norm == 1.0
    assert compose_config(["model=lenet5"]).data.name == "mnist"


def test_lstm_transfer_algorithms_get_their_own_lr_and_an_override_still_wins():
    # conf/model_algo/lstm_<algo>.yaml: lr sets the transfer A -> C, the model's lr 1 is digital SGD's
    lr = {algo: compose_config(["model=lstm", f"algo={algo}"]).train.lr for algo in ("fp", "sgd", "ttv2", "cttv2", "agad")}
    assert lr == {"fp": 1.0, "sgd": 1.0, "ttv2": 0.03, "cttv2": 0.03, "agad": 0.03}
    assert compose_config(["model=lstm", "algo=agad", "train.lr=0.1"]).train.lr == 0.1
    assert compose_config(["model=fc", "algo=agad"]).train.lr == compose_config(["model=fc", "algo=fp"]).train.lr


def test_an_analog_linear_layer_keeps_its_reads_in_forward_order():
    layer = AnalogLinear(3, 2, build_algorithm(SGD, IDEAL, (2, 3), UPDATE, gen(0), gen(1)), PERFECT, gen(1), gen(2))
    seen = []
    layer.algorithm.update = lambda x, d, lr: seen.append(x.clone())
    a, b = torch.ones(1, 3), torch.full((1, 3), 2.0)
    (layer(a).sum() + layer(b).sum()).backward()
    layer.apply_update(0.1)
    torch.testing.assert_close(seen[0][0], torch.cat([a, b]))
