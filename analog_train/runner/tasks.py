"""What the train loop trains on: a task supplies mini-batches, the loss and the test metrics.

The loop (:mod:`analog_train.runner.train`) is the same for every task. The kind of the data set
(its config schema, :data:`analog_train.config.DATASETS`) picks the task: image classification, or next-character
prediction with truncated backpropagation through time. Losses are the mean over a replica's
samples, summed over the replicas (each replica's gradient is its own); metrics are per replica.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from analog_train.data import Dataset, TextCorpus, kind_of
from analog_train.nn.models import DataSpec

Batch = tuple[Tensor, Tensor]


class Task(ABC):
    """A learning problem as the train loop sees it; subclasses register for a data kind (:data:`TASKS`)."""

    kind: str  # the data kind it trains on
    unit = "samples"  # what samples_seen counts
    sample_name = "sample"  # one of them
    metrics: tuple[str, ...] = ("test_loss", "test_error")  # evaluate's keys, in metrics.csv order

    @classmethod
    @abstractmethod
    def from_config(cls, data_cfg: Any, data: Any, device: torch.device) -> Task:
        """The task on loaded ``data`` with the batching of ``data_cfg``."""

    @property
    @abstractmethod
    def spec(self) -> DataSpec:
        """What the model needs to know of the data."""

    @abstractmethod
    def batches(self, order: torch.Generator) -> Iterator[Batch]:
        """One epoch of training mini-batches."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, int]:
        """The per-replica mean losses of a mini-batch summed over the replicas (differentiable), and
        the number of replicas."""

    @abstractmethod
    def batch_samples(self, batch: Batch) -> int:
        """Samples of a mini-batch, in :attr:`unit`."""

    @abstractmethod
    def evaluate(self, model: nn.Module) -> list[dict[str, float]]:
        """Test metrics per replica, through the same (noisy) analog forward pass."""

    @property
    @abstractmethod
    def test_samples(self) -> int:
        """Samples the test metrics average over (images, characters)."""


class Classification(Task):
    """Images to classes: shuffled mini-batches, NLL loss, test error in %."""

    kind = "image"
    unit = "images"
    sample_name = "image"

    @classmethod
    def from_config(cls, data_cfg: Any, data: Dataset, device: torch.device) -> Classification:
        return cls(data, data_cfg.batch_size, data_cfg.test_batch_size, device)

    def __init__(self, data: Dataset, batch_size: int, test_batch_size: int, device: torch.device) -> None:
        self.train_x, self.train_y = data.train_x.to(device), data.train_y.to(device)
        self.test_x, self.test_y = data.test_x.to(device), data.test_y.to(device)
        self.batch_size, self.test_batch_size = batch_size, test_batch_size
        self._spec = DataSpec("image", data.n_classes, tuple(data.train_x.shape[1:]))

    @property
    def spec(self) -> DataSpec:
        return self._spec

    def batches(self, order: torch.Generator) -> Iterator[Batch]:
        perm = torch.randperm(len(self.train_x), generator=order).to(self.train_x.device)
        for start in range(0, len(perm), self.batch_size):
            idx = perm[start:start + self.batch_size]
            yield self.train_x[idx], self.train_y[idx]

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, int]:
        x, y = batch
        out = model(x)  # (P, B, classes)
        p = out.shape[0]
        return F.nll_loss(out.reshape(-1, out.shape[-1]), y.repeat(p)) * p, p

    def batch_samples(self, batch: Batch) -> int:
        return len(batch[1])

    @property
    def test_samples(self) -> int:
        return len(self.test_y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> list[dict[str, float]]:
        model.eval()
        loss_sum, wrong = None, None
        for start in range(0, len(self.test_x), self.test_batch_size):
            out = model(self.test_x[start:start + self.test_batch_size])  # (P, B, C)
            yb = self.test_y[start:start + self.test_batch_size]
            nll = F.nll_loss(out.transpose(1, 2), yb.expand(out.shape[0], -1), reduction="none").sum(dim=1)
            miss = (out.argmax(dim=-1) != yb).sum(dim=1)
            loss_sum = nll if loss_sum is None else loss_sum + nll
            wrong = miss if wrong is None else wrong + miss
        model.train()
        n = len(self.test_x)
        return [{"test_loss": float(loss) / n, "test_error": 100.0 * float(miss) / n} for loss, miss in zip(loss_sum, wrong)]


class NextCharacter(Task):
    """Next-character prediction with truncated BPTT (aihwkit example 22).

    The training text is cut into ``batch_size`` contiguous streams; mini-batch ``k`` is the ``k``-th
    chunk of ``seq_len`` characters of every stream, and the hidden state at the end of a chunk starts
    the next one (detached: gradients stop at chunk borders). Each epoch starts the chunks at a random
    offset below ``seq_len`` with a zero state. The test text is read the same way in
    ``test_batch_size`` streams. Metrics: loss in nats per character, perplexity, accuracy of the
    most likely next character.
    """

    kind = "text"
    unit = "characters"
    sample_name = "character"
    metrics = ("test_loss", "test_perplexity", "test_accuracy", "test_error")

    @classmethod
    def from_config(cls, data_cfg: Any, data: TextCorpus, device: torch.device) -> NextCharacter:
        return cls(data, data_cfg.seq_len, data_cfg.batch_size, data_cfg.test_batch_size, device)

    def __init__(self, corpus: TextCorpus, seq_len: int, batch_size: int, test_batch_size: int,
                 device: torch.device) -> None:
        self.train_ids, self.test_ids = corpus.train.to(device), corpus.test.to(device)
        self.seq_len, self.batch_size, self.test_batch_size = seq_len, batch_size, test_batch_size
        self.device = device
        self._spec = DataSpec("text", len(corpus.vocab))
        self._state: Any = None

    @property
    def spec(self) -> DataSpec:
        return self._spec

    @staticmethod
    def streams(ids: Tensor, n: int, offset: int = 0) -> Tensor:
        """``(L, n)``: ``n`` contiguous streams of the text, time first."""
        length = (len(ids) - offset) // n
        return ids[offset:offset + n * length].view(n, length).t()

    def _chunks(self, streams: Tensor) -> Iterator[Batch]:
        for start in range(0, streams.shape[0] - 1, self.seq_len):
            end = min(start + self.seq_len, streams.shape[0] - 1)
            yield streams[start:end], streams[start + 1:end + 1]

    def batches(self, order: torch.Generator) -> Iterator[Batch]:
        offset = int(torch.randint(self.seq_len, (1,), generator=order))
        self._state = None
        yield from self._chunks(self.streams(self.train_ids, self.batch_size, offset))

    def _forward(self, model: nn.Module, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        if state is None:
            state = model.initial_state(x.shape[1], self.device)
        return model(x, state)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, int]:
        x, y = batch
        out, state = self._forward(model, x, self._state)  # (P, T, B, V)
        self._state = [(h.detach(), c.detach()) for h, c in state]
        p = out.shape[0]
        return F.nll_loss(out.reshape(-1, out.shape[-1]), y.reshape(-1).repeat(p)) * p, p

    def batch_samples(self, batch: Batch) -> int:
        return batch[1].numel()

    @property
    def test_samples(self) -> int:
        return (len(self.test_ids) // self.test_batch_size - 1) * self.test_batch_size

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> list[dict[str, float]]:
        model.eval()
        state, nll, right, count = None, None, None, 0
        for x, y in self._chunks(self.streams(self.test_ids, self.test_batch_size)):
            out, state = self._forward(model, x, state)
            target = y.expand(out.shape[0], *y.shape)
            batch_nll = F.nll_loss(out.permute(0, 3, 1, 2), target, reduction="none").flatten(1).sum(1)
            batch_right = (out.argmax(-1) == target).flatten(1).sum(1)
            nll = batch_nll if nll is None else nll + batch_nll
            right = batch_right if right is None else right + batch_right
            count += y.numel()
        model.train()
        rows = []
        for loss, hit in zip((nll / count).tolist(), (100.0 * right / count).tolist()):
            rows.append({"test_loss": loss, "test_perplexity": math.exp(min(loss, 700.0)), "test_accuracy": hit,
                         "test_error": 100.0 - hit})
        return rows


TASKS: dict[str, type[Task]] = {task.kind: task for task in (Classification, NextCharacter)}


def build_task(data_cfg: Any, data: Any, device: torch.device) -> Task:
    """The task for the kind of data set ``data_cfg.name``."""
    return TASKS[kind_of(data_cfg.name)].from_config(data_cfg, data, device)
