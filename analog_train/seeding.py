"""Seeds of a run: every random stream is derived from (seed, index, purpose), so streams never overlap.

Purposes in use: 0 torch's global generator, 1 initial weights, 2 device-to-device draw of a layer
(construction seed), 3 a layer's run generator (pulses, c2c and read noise), 4 data order, 5 an
experiment's inputs, 6 an experiment's target, 7 the asymmetry experiment's responses.
"""

from __future__ import annotations

import numpy as np


def derived_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from (seed, index, purpose)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)
