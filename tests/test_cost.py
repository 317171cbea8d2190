"""Table 1 cost model: the paper's printed numbers, scaling with N, and validation of assumptions."""

from __future__ import annotations

import pandas as pd
import pytest

from analog_train.runner.cost import ALGORITHMS, COLUMNS, CostAssumptions, cost_table, format_cost_table


def _row(df: pd.DataFrame, algorithm: str) -> pd.Series:
    return df.set_index("algorithm").loc[algorithm]


def test_defaults_are_the_papers() -> None:
    a = CostAssumptions()
    assert (a.n, a.digital_bits, a.n_s, a.l_avg, a.l_max) == (512, 8, 2, 5.0, None)
    assert (a.t_pulse_ns, a.t_mvm_ns, a.gflops_per_array, a.mp_batch) == (5.0, 40.0, 175.0, 100)


def test_table_shape() -> None:
    df = cost_table()
    assert list(df["algorithm"]) == list(ALGORITHMS)
    assert list(df.columns) == list(COLUMNS)


def test_default_times_match_table_1() -> None:
    times = cost_table().set_index("algorithm")["time_ns"]
    printed = {"SGD": 30.9, "TTv2": 56.3, "c-TTv2": 56.3, "AGAD": 62.1, "MP": 3024.5}
    assert {k: round(float(times[k]), 1) for k in printed} == printed


def test_agad_time_split_as_in_paper() -> None:
    agad = _row(cost_table(), "AGAD")
    assert agad["fp_ops"] == 2560
    assert round(agad["digital_ns"], 1) == 14.6
    assert agad["analog_ns"] == pytest.approx(47.5)


def test_agad_fast_setting_gives_17_1_ns() -> None:
    df = cost_table(CostAssumptions(n=512, n_s=10, l_max=1))
    assert round(float(_row(df, "AGAD")["time_ns"]), 1) == 17.1
    # about 175x faster than MP, as the paper states
    assert _row(df, "MP")["time_ns"] / _row(df, "AGAD")["time_ns"] == pytest.approx(175, rel=0.02)


def test_l_max_overrides_l_avg() -> None:
    assert CostAssumptions(l_avg=5, l_max=1).pulse_length == 1
    assert CostAssumptions(l_avg=3.5).pulse_length == 3.5
    sgd = _row(cost_table(CostAssumptions(l_avg=5, l_max=2)), "SGD")
    assert sgd["analog_ns"] == pytest.approx(2 * 5.0)


def test_default_storage_and_memory_columns() -> None:
    n = 512
    df = cost_table().set_index("algorithm")
    assert list(df["storage_bytes"]) == [2 * n, n**2 + 2 * n, n**2 + 2 * n, 3 * n**2 + 2 * n, n**2 + 2 * n * 100]
    assert list(df["memory_ops_bits"]) == pytest.approx([0, 16 * n / 2, 18 * n / 2, 50 * n / 2, 16 * n**2 / 100])
    assert list(df["input_loads_bits"]) == [16 * n + 2 * n * 5] * 4 + [16 * n]


@pytest.mark.parametrize("n", [64, 256, 1000])
def test_ops_and_storage_scale_with_n(n: int) -> None:
    n_s = 2
    df = cost_table(CostAssumptions(n=n, n_s=n_s)).set_index("algorithm")
    assert list(df["fp_ops"]) == pytest.approx(
        [2 * n, 2 * n + 2 * n / n_s, 2 * n + 2 * n / n_s, 2 * n + 6 * n / n_s, 2 * n**2 + n]
    )
    assert list(df["storage_bytes"]) == [2 * n, n**2 + 2 * n, n**2 + 2 * n, 3 * n**2 + 2 * n, n**2 + 200 * n]


def test_linear_vs_quadratic_growth() -> None:
    small = cost_table(CostAssumptions(n=256)).set_index("algorithm")
    big = cost_table(CostAssumptions(n=512)).set_index("algorithm")
    ratio = big["fp_ops"] / small["fp_ops"]
    assert ratio[["SGD", "TTv2", "c-TTv2", "AGAD"]].tolist() == pytest.approx([2.0] * 4)
    assert ratio["MP"] == pytest.approx(4.0, rel=0.01)


def test_analog_time_independent_of_n_except_mp() -> None:
    small = cost_table(CostAssumptions(n=128)).set_index("algorithm")["analog_ns"]
    big = cost_table(CostAssumptions(n=1024)).set_index("algorithm")["analog_ns"]
    assert small[["SGD", "TTv2", "c-TTv2", "AGAD"]].tolist() == big[["SGD", "TTv2", "c-TTv2", "AGAD"]].tolist()
    assert big["MP"] == pytest.approx(8 * small["MP"])


def test_large_n_s_approaches_sgd() -> None:
    df = cost_table(CostAssumptions(n_s=10**6)).set_index("algorithm")["time_ns"]
    assert df[["TTv2", "c-TTv2", "AGAD"]].tolist() == pytest.approx([df["SGD"]] * 3, abs=1e-3)


def test_agad_beta_one_drops_p() -> None:
    n, n_s = 512, 2
    agad = _row(cost_table(CostAssumptions(agad_beta=1.0)), "AGAD")
    assert agad["fp_ops"] == pytest.approx(2 * n + 3 * n / n_s)
    assert agad["storage_bytes"] == 2 * n**2 + 2 * n
    assert agad["memory_ops_bits"] == pytest.approx(34 * n / n_s)


def test_digital_precision_scales_storage() -> None:
    eight = cost_table().set_index("algorithm")["storage_bytes"]
    sixteen = cost_table(CostAssumptions(digital_bits=16)).set_index("algorithm")["storage_bytes"]
    assert (sixteen / eight).tolist() == pytest.approx([2.0] * len(ALGORITHMS))


def test_throughput_scales_digital_time_only() -> None:
    base = cost_table().set_index("algorithm")
    fast = cost_table(CostAssumptions(gflops_per_array=350.0)).set_index("algorithm")
    assert (fast["digital_ns"] * 2).tolist() == pytest.approx(base["digital_ns"].tolist())
    assert fast["analog_ns"].tolist() == base["analog_ns"].tolist()


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("n", 0, ">= 1"),
        ("n", -5, ">= 1"),
        ("n", 2.5, ">= 1"),
        ("n_s", 0, ">= 1"),
        ("digital_bits", 0, ">= 1"),
        ("mp_batch", 0, ">= 1"),
        ("l_max", 0, ">= 1"),
        ("l_avg", 0.0, "> 0"),
        ("t_pulse_ns", -1.0, ">= 0"),
        ("t_mvm_ns", -0.1, ">= 0"),
        ("t_mvm_ns", float("nan"), ">= 0"),
        ("gflops_per_array", 0.0, "> 0"),
        ("agad_beta", 1.5, "<= 1"),
        ("agad_beta", -0.1, ">= 0"),
    ],
)
def test_invalid_assumptions_name_field_and_range(field: str, value: float, allowed: str) -> None:
    with pytest.raises(ValueError, match=rf"CostAssumptions\.{field} must be .*{allowed}") as info:
        CostAssumptions(**{field: value})
    assert repr(value) in str(info.value)


def test_zero_times_are_allowed() -> None:
    df = cost_table(CostAssumptions(t_pulse_ns=0.0, t_mvm_ns=0.0))
    assert (df["analog_ns"] == 0).all()


def test_format_cost_table_aligned() -> None:
    text = format_cost_table(cost_table())
    lines = text.splitlines()
    assert len(lines) == 2 + len(ALGORITHMS)
    assert "time [ns]" in lines[0] and "storage [byte]" in lines[0]
    assert set(lines[1]) <= {"-", " "}
    # every row ends at the same column, i.e. right-aligned numbers line up
    assert len({len(line) for line in lines}) == 1
    for name, printed in zip(ALGORITHMS, ["30.9", "56.3", "56.3", "62.1", "3,024.5"]):
        row = next(line for line in lines[2:] if line.split()[0] == name)
        assert printed in row.split()
    time_col = lines[0].index("time [ns]") + len("time [ns]")
    assert all(line[time_col - 1] != " " for line in lines[2:])


def test_format_cost_table_of_override() -> None:
    text = format_cost_table(cost_table(CostAssumptions(n_s=10, l_max=1)))
    agad = next(line for line in text.splitlines() if line.startswith("AGAD"))
    assert "17.1" in agad.split()
    assert "1,331.2" in agad.split()
