"""analog-train: simulated analog in-memory training on resistive crossbar arrays."""

__version__ = "0.1.0"
