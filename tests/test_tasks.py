"""The tasks the train loop runs: classification and next-character prediction (truncated BPTT)."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from analog_train.config import WarAndPeaceData
from analog_train.data import CharVocab, TextCorpus, load_corpus
from analog_train.runner.tasks import NextCharacter

from test_data import real_folder


def corpus(n=1000, vocab=5):
    ids = torch.arange(n) % vocab
    return TextCorpus(train=ids, test=ids[:300].clone(), vocab=CharVocab("abcde"[:vocab]), name="toy")


class Recorder(torch.nn.Module):
    """A stand-in model that records the chunks and states it sees and predicts uniformly."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab, self.calls = vocab, []
        self.w = torch.nn.Parameter(torch.zeros(()))

    def initial_state(self, batch, device="cpu"):
        return [(torch.zeros(1, batch, 1), torch.zeros(1, batch, 1))]

    def forward(self, ids, state):
        self.calls.append((ids.clone(), state[0][0].clone()))
        h = state[0][0] + 1  # counts the chunks since the state was last reset
        logits = torch.zeros(1, *ids.shape, self.vocab) + self.w
        return torch.log_softmax(logits, -1), [(h, h)]


def test_streams_are_contiguous_and_the_state_carries_over_within_an_epoch():
    task = NextCharacter(corpus(), seq_len=7, batch_size=4, test_batch_size=2, device=torch.device("cpu"))
    model = Recorder(5)
    batches = list(task.batches(torch.Generator().manual_seed(0)))
    for batch in batches:
        task.loss(model, batch)
    x0, y0 = batches[0]
    assert x0.shape == (7, 4) and torch.equal(y0[:-1], x0[1:])  # targets: the next character
    for (xa, ya), (xb, _) in zip(batches, batches[1:]):
        assert torch.equal(xb[0], ya[-1])  # a stream continues where the previous chunk ended
    counters = [float(state.flatten()[0]) for _, state in model.calls]
    assert counters == list(range(len(batches)))  # the state after chunk k starts chunk k + 1
    model.calls.clear()
    for batch in task.batches(torch.Generator().manual_seed(1)):
        task.loss(model, batch)
        break
    assert float(model.calls[0][1].flatten()[0]) == 0.0  # a new epoch starts from a zero state
    assert sum(task.batch_samples(b) for b in batches) >= (1000 - 7) // 4 * 4 - 4 * 7


def test_text_metrics_of_a_uniform_model():
    """A model that predicts every symbol with 1/V: loss ln V nats per character, perplexity V."""
    task = NextCharacter(corpus(), seq_len=10, batch_size=4, test_batch_size=3, device=torch.device("cpu"))
    (row,) = task.evaluate(Recorder(5))
    assert row["test_loss"] == pytest.approx(math.log(5), rel=1e-6)
    assert row["test_perplexity"] == pytest.approx(5.0, rel=1e-5)
    assert row["test_error"] == pytest.approx(100.0 - row["test_accuracy"])


def test_war_and_peace_split_and_vocabulary():
    real_folder("war-and-peace", ["warpeace_input.txt"])
    cfg = OmegaConf.structured(WarAndPeaceData())
    c = load_corpus(cfg)
    assert len(c.train) + len(c.test) == 3265463 and len(c.test) == pytest.approx(326546, abs=1)
    assert len(c.vocab) == 84 and c.vocab.rare  # 83 training characters + the rare symbol
    rare = int((c.test == len(c.vocab) - 1).sum())
    assert int((c.train == len(c.vocab) - 1).sum()) == 0 and 0 < rare < 0.005 * len(c.test)
    small = load_corpus(OmegaConf.merge(cfg, {"train_subset": 1000, "test_subset": 500}))
    assert len(small.train) == 1000 and len(small.test) == 500 and torch.equal(small.train, c.train[:1000])


def test_rare_symbol_encodes_unknown_characters():
    vocab = CharVocab.from_text("abca", rare=True)
    assert len(vocab) == 4 and vocab.encode("abz").tolist() == [0, 1, 3]
    assert vocab.decode(torch.tensor([0, 3])) == "a\ufffd"
