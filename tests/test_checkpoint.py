"""The analog state round-trips: an algorithm restored from its state_dict (and its generator with the
unused kernel seeds) continues exactly as the original, on the compiled and the torch path.

The end-to-end claim (a killed run resumed gives the uninterrupted metrics) is in test_runs.py.
"""

from __future__ import annotations

import io

import pytest
import torch

from analog_train.algorithms import build_algorithm
from analog_train.config import compose_config, to_object
from analog_train.devices import kernels

CASES = [("sgd", "reram"), ("sgd", "pcm"), ("ttv2", "softbounds"), ("cttv2", "ecram"), ("agad", "reram")]
# Choppers that flip within a few reads, so that the saved state has flipped choppers and AGAD's p_ref.
FAST_CHOPPERS = {"cttv2": ["algo.in_chop_prob=0.5"], "agad": ["algo.in_chop_prob=0.5"]}


def build(algo: str, device: str):
    cfg = compose_config([f"algo={algo}", f"device={device}", *FAST_CHOPPERS.get(algo, [])])
    alg = build_algorithm(to_object(cfg.algo), to_object(cfg.device), (6, 8), to_object(cfg["update"]),
                          torch.Generator().manual_seed(3), torch.Generator().manual_seed(4), population=2)
    alg.set_weights(torch.rand(2, 6, 8, generator=torch.Generator().manual_seed(5)) * 0.2 - 0.1)
    return alg


def steps(alg, data: torch.Generator, n: int) -> None:
    for _ in range(n):
        x = torch.rand(2, 10, 8, generator=data)
        d = torch.randn(2, 10, 6, generator=data) * 0.1
        alg.update(x, d, 0.1)
        alg.post_step()


def tensors(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for v in state.values() for t in tensors(v)]
    return []


@pytest.mark.parametrize("kernels_on", [True, False])
@pytest.mark.parametrize("algo,device", CASES)
def test_restored_algorithm_continues_exactly(monkeypatch: pytest.MonkeyPatch, algo: str, device: str,
                                             kernels_on: bool) -> None:
    if not kernels_on:
        monkeypatch.setenv("ANALOG_TRAIN_KERNELS", "0")
    original, data = build(algo, device), torch.Generator().manual_seed(6)
    steps(original, data, 6)  # 60 samples: transfers, chopper flips (an odd number for some columns), p_ref
    if algo != "sgd":  # the state that matters is there to be saved
        assert bool((original.H != 0).any())
    if algo in FAST_CHOPPERS:
        assert bool((original.c_in == -1).any())
    if algo == "agad":
        assert bool((original.p_ref != 0).any())
    buffer = io.BytesIO()
    torch.save({"alg": original.state_dict(), "gen": original.generator.get_state(),
                "seeds": kernels.seed_block_state(original.generator), "data": data.get_state()}, buffer)
    steps(original, data, 5)

    restored = build(algo, device)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    arrays = [getattr(restored, name) for name in restored.state_arrays]
    before = [id(a.g) if hasattr(a, "g") else id(a.plus.g) for a in arrays]
    restored.load_state_dict(saved["alg"])
    assert [id(a.g) if hasattr(a, "g") else id(a.plus.g) for a in arrays] == before  # in place
    restored.generator.set_state(saved["gen"])
    kernels.load_seed_block_state(restored.generator, saved["seeds"])
    data.set_state(saved["data"])
    steps(restored, data, 5)

    assert torch.equal(restored.weight, original.weight)
    mine, theirs = restored.state_dict(), original.state_dict()
    assert mine["counters"] == theirs["counters"]
    for a, b in zip(tensors(mine), tensors(theirs)):
        assert torch.equal(a, b)


def test_a_wrong_shape_is_refused() -> None:
    alg = build("agad", "reram")
    state = alg.state_dict()
    state["tensors"]["p"] = state["tensors"]["p"][:, :3]
    with pytest.raises(ValueError, match="p: the saved state has shape"):
        alg.load_state_dict(state)
