"""Closed-form update cost per input sample (paper Table 1, Rasch et al., Nat. Commun. 2024).

The paper estimates, for one N x N layer, what the weight update (gradient accumulation included)
costs per input sample, because forward and backward passes are identical for all algorithms.
Each column of :func:`cost_table` is one formula of Table 1 evaluated for a :class:`CostAssumptions`;
nothing is a stored result. With the default assumptions the time column reproduces the printed
30.9 / 56.3 / 56.3 / 62.1 / 3024.5 ns, and AGAD with ``n_s=10, l_max=1`` gives 17.1 ns.

Notation: N array size, b digital precision in bits (8), n_s transfer period, l the pulse-train
length (``l_max`` when set, else ``l_avg``), B the mixed-precision batch, t_p a single pulse,
t_MVM one analog matrix-vector product, X the digital throughput per array. Following the table's
caption, only FP multiplications and additions count as operations (comparisons, resets, sign
flips, ceilings and O(1) loads/stores are free), memory traffic is hidden behind compute, and
stochastic pulse generation runs in parallel, so

    time per sample = FP ops / X + analog time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import pandas as pd

ALGORITHMS = ("SGD", "TTv2", "c-TTv2", "AGAD", "MP")

# Column name -> label with unit, in display order.
COLUMNS = {
    "algorithm": "algorithm",
    "fp_ops": "FP ops",
    "digital_ns": "digital [ns]",
    "analog_ns": "analog [ns]",
    "time_ns": "time [ns]",
    "storage_bytes": "storage [byte]",
    "input_loads_bits": "input loads [bit]",
    "memory_ops_bits": "memory ops [bit]",
}
_TIME_COLUMNS = ("digital_ns", "analog_ns", "time_ns")


@dataclass(frozen=True)
class CostAssumptions:
    """The hardware and algorithm settings Table 1 is evaluated at; defaults are the paper's."""

    n: int = 512  # N: rows = columns of the square crossbar array
    digital_bits: int = 8  # b: width of every digital number (8-bit FP in the paper), bits
    n_s: int = 2  # transfer period: one row of A is read every n_s samples
    l_avg: float = 5.0  # average pulse-train length per update, pulses
    l_max: Optional[int] = None  # when set, the pulse-train length used instead of l_avg, pulses
    t_pulse_ns: float = 5.0  # t_p: duration of one update pulse, ns
    t_mvm_ns: float = 40.0  # t_MVM: one analog matrix-vector product (the transfer read), ns
    gflops_per_array: float = 175.0  # X: 0.7 TFLOPS shared by 4 arrays, GFLOPS (= FP ops per ns)
    mp_batch: int = 100  # B: mixed precision writes the analog weights once per batch, samples
    agad_beta: float = 0.5  # AGAD leaky-average weight; beta == 1 drops P (less storage and ops)

    def __post_init__(self) -> None:
        _check_int(self, "n", 1)
        _check_int(self, "digital_bits", 1)
        _check_int(self, "n_s", 1)
        _check_number(self, "l_avg", 0.0, strict=True)
        if self.l_max is not None:
            _check_int(self, "l_max", 1)
        _check_number(self, "t_pulse_ns", 0.0)
        _check_number(self, "t_mvm_ns", 0.0)
        _check_number(self, "gflops_per_array", 0.0, strict=True)
        _check_int(self, "mp_batch", 1)
        _check_number(self, "agad_beta", 0.0, upper=1.0)

    @property
    def pulse_length(self) -> float:
        """Pulses per update train: ``l_max`` overrides ``l_avg`` (the paper's 17.1 ns case)."""
        return float(self.l_max) if self.l_max is not None else self.l_avg


def _check_int(a: CostAssumptions, name: str, lower: int) -> None:
    value = getattr(a, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < lower:
        raise ValueError(f"CostAssumptions.{name} must be an integer >= {lower} (got {value!r})")


def _check_number(
    a: CostAssumptions, name: str, lower: float, *, strict: bool = False, upper: Optional[float] = None
) -> None:
    value = getattr(a, name)
    allowed = f"{'>' if strict else '>='} {lower:g}" + (f" and <= {upper:g}" if upper is not None else "")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lower if strict else value >= lower) and (upper is None or value <= upper)
    if not ok:
        raise ValueError(f"CostAssumptions.{name} must be a finite number {allowed} (got {value!r})")


class _Cost(NamedTuple):
    """One algorithm's Table 1 entries, before FP ops are converted to time."""

    fp_ops: float
    analog_ns: float
    storage_bytes: float
    input_loads_bits: float
    memory_ops_bits: float


def _pulsed_update(a: CostAssumptions) -> _Cost:
    """In-memory SGD: the stochastic pulsed outer product applied straight to W.

    FP ops 2N: the two absolute maxima m_x, m_d that scale the pulse probabilities.
    Analog l * t_p: one pulse train (Table 1 uses l_avg * t_p, not the Methods' two-phase 2 l_avg t_p;
    only the former reproduces the printed numbers). Storage 2N numbers: the x and d vectors.
    Input loads 2bN + 2Nl bits: x and d plus 2N pre-generated pulse trains of length l.
    Memory ops: O(1) in the table, i.e. nothing beyond the input loads.
    """
    n, b, l = a.n, a.digital_bits, a.pulse_length
    return _Cost(
        fp_ops=2 * n,
        analog_ns=l * a.t_pulse_ns,
        storage_bytes=b / 8 * 2 * n,
        input_loads_bits=2 * b * n + 2 * n * l,
        memory_ops_bits=0.0,
    )


def _ttv2(a: CostAssumptions) -> _Cost:
    """TTv2: the pulsed update onto A, plus one row transfer A -> H -> W every n_s samples.

    FP ops +2N/n_s: h_k += lambda_H z_k is one multiply and one add per element of the row.
    Analog +t_p/n_s + t_MVM/n_s: the row read is one MVM, the threshold transfer writes at most one
    pulse per element of one row of W (in parallel). Storage +N^2 numbers: the hidden matrix H.
    Memory ops 2bN/n_s bits: load and store the row h_k.
    """
    sgd = _pulsed_update(a)
    n, b, n_s = a.n, a.digital_bits, a.n_s
    return sgd._replace(
        fp_ops=sgd.fp_ops + 2 * n / n_s,
        analog_ns=sgd.analog_ns + (a.t_pulse_ns + a.t_mvm_ns) / n_s,
        storage_bytes=b / 8 * (n * n + 2 * n),
        memory_ops_bits=2 * b * n / n_s,
    )


def _cttv2(a: CostAssumptions) -> _Cost:
    """c-TTv2: TTv2 plus chopper signs, whose flips are not counted as FP ops.

    Memory ops +2N/n_s bits: load and store one 1-bit chopper sign per element of the read row.
    """
    ttv2 = _ttv2(a)
    return ttv2._replace(memory_ops_bits=ttv2.memory_ops_bits + 2 * a.n / a.n_s)


def _agad(a: CostAssumptions) -> _Cost:
    """AGAD: c-TTv2 with a digital dynamic reference p_ref instead of the reference array R.

    FP ops +N/n_s: subtract p_ref_k; +3N/n_s when beta != 1 for the leaky average
    p_k = (1 - beta) p_k + beta omega. Storage +N^2 numbers for P_ref, +N^2 more for P when
    beta != 1. Memory ops +2bN/n_s bits to load/store the row of P_ref, doubled when P is kept.
    """
    cttv2 = _cttv2(a)
    n, b, n_s = a.n, a.digital_bits, a.n_s
    digital_matrices = 1 if a.agad_beta == 1 else 2  # P_ref, and P unless beta == 1
    return cttv2._replace(
        fp_ops=cttv2.fp_ops + (1 + 3 * (digital_matrices - 1)) * n / n_s,
        storage_bytes=cttv2.storage_bytes + b / 8 * digital_matrices * n * n,
        memory_ops_bits=cttv2.memory_ops_bits + 2 * b * digital_matrices * n / n_s,
    )


def _mixed_precision(a: CostAssumptions) -> _Cost:
    """MP (Nandakumar et al.): the gradient is accumulated digitally in a full N x N matrix.

    FP ops 2N^2 + N: one multiply and one add per matrix element, plus scaling one input by the
    learning rate. Analog (N/B) t_p: the N rows of W are pulsed once per batch of B samples.
    Storage N^2 + 2NB numbers: the accumulation matrix and the batch of x and d vectors.
    Input loads 2bN bits (x and d, no pulse trains). Memory ops 2bN^2/B bits: the matrix is loaded
    and stored once per batch.
    """
    n, b, batch = a.n, a.digital_bits, a.mp_batch
    return _Cost(
        fp_ops=2 * n * n + n,
        analog_ns=n / batch * a.t_pulse_ns,
        storage_bytes=b / 8 * (n * n + 2 * n * batch),
        input_loads_bits=2 * b * n,
        memory_ops_bits=2 * b * n * n / batch,
    )


_FORMULAS: dict[str, Callable[[CostAssumptions], _Cost]] = {
    "SGD": _pulsed_update,
    "TTv2": _ttv2,
    "c-TTv2": _cttv2,
    "AGAD": _agad,
    "MP": _mixed_precision,
}


def cost_table(assumptions: Optional[CostAssumptions] = None) -> pd.DataFrame:
    """Table 1 evaluated at ``assumptions`` (paper defaults when omitted), one row per algorithm.

    Times are per input sample in ns; digital time is FP ops divided by the array's throughput
    (1 GFLOPS = 1 op/ns), and the total adds the analog time since memory traffic is hidden.
    """
    a = assumptions if assumptions is not None else CostAssumptions()
    rows = []
    for name in ALGORITHMS:
        cost = _FORMULAS[name](a)
        digital_ns = cost.fp_ops / a.gflops_per_array
        rows.append(
            {
                "algorithm": name,
                "fp_ops": float(cost.fp_ops),
                "digital_ns": digital_ns,
                "analog_ns": float(cost.analog_ns),
                "time_ns": digital_ns + cost.analog_ns,
                "storage_bytes": float(cost.storage_bytes),
                "input_loads_bits": float(cost.input_loads_bits),
                "memory_ops_bits": float(cost.memory_ops_bits),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _format_value(column: str, value: str | float) -> str:
    if isinstance(value, str):
        return value
    number = float(value)
    if column in _TIME_COLUMNS or not number.is_integer():
        return f"{number:,.1f}"
    return f"{number:,.0f}"


def format_cost_table(df: pd.DataFrame) -> str:
    """Aligned plain-text rendering of :func:`cost_table` for the ``analog-train cost`` command.

    Times keep the paper's one decimal; counts print as integers with thousands separators.
    Names are left-aligned, numbers right-aligned; unknown columns are shown under their own name.
    """
    headers = [COLUMNS.get(c, c) for c in df.columns]
    cells = [[_format_value(c, v) for c, v in zip(df.columns, row)] for row in df.itertuples(index=False)]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [not pd.api.types.is_string_dtype(df[c]) for c in df.columns]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule] + [line(r) for r in cells])
