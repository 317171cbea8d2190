"""The claims report: every row computed from the CSVs of a figures folder, with verdicts that follow the data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analog_train.report import FAILS, HOLDS, NOT_MEASURED, Spread, claim_rows, pooled_std, write_report
from tests.helpers import run_cli

SEED_NOISE = (-1.0, 0.0, 1.0)  # three seeds: std 1 in the unit of each synthetic metric's spread below


def fig3_traces() -> pd.DataFrame:
    """W(0, 0) moved by single pulses: the net downward pulses per (algo, offset) are chosen per claim."""
    pulses = {("ttv2", 0.0): (10, 0), ("ttv2", -0.8): (0, 10),  # learns / goes the wrong way
              ("cttv2", 0.0): (20, 0), ("cttv2", -0.8): (6, 0),  # slowed, still learns (6 > 2 sqrt 6)
              ("agad", 0.0): (15, 0), ("agad", -0.8): (14, 0)}  # unaffected
    rows = []
    for (algo, offset), (down, up) in pulses.items():
        steps = [-0.02] * down + [0.02] * up + [0.0] * (100 - down - up)
        w = 0.0
        for sample, step in enumerate([0.0, *steps], start=1):
            w += step
            rows.append(dict(algo=algo, reference_offset=offset, sample=sample, A=0.0, H=0.0, W=w, p=None,
                             p_ref=None, chopper=1.0, read=False, flip=False))
    return pd.DataFrame(rows)


FIG4_MEANS = {  # eps_w at sigma_r 0 / 0.1 / 0.5 (both n_states); seed std 0.005 (0.5 %)
    "sgd": (0.30, 0.30, 0.30),
    "ttv2": (0.05, 0.09, 0.40),
    "cttv2": (0.06, 0.06, 0.06),
    "cttv2_regular": (0.06, 0.07, 0.12),  # not flat: a claim that does not hold
    "agad": (0.08, 0.08, 0.08),
}


def fig4_grid() -> pd.DataFrame:
    rows = []
    for algo, means in FIG4_MEANS.items():
        for n_states in (10, 20):
            for sigma_r, mean in zip((0.0, 0.1, 0.5), means):
                for seed, noise in enumerate(SEED_NOISE):
                    rows.append(dict(algo=algo, n_states=n_states, sigma_r=sigma_r, seed=seed, samples=0, eps_w=0.9))
                    rows.append(dict(algo=algo, n_states=n_states, sigma_r=sigma_r, seed=seed, samples=1000,
                                     eps_w=mean + 0.005 * noise))
    return pd.DataFrame(rows)


FIG5_SIGMA = {"ttv2": (2.0, 10.0), "cttv2": (2.0, 4.0), "agad": (2.0, 2.0)}  # metric at sigma_r 0 / 0.5
FIG5_STATES = {"ttv2": 10.0, "cttv2": 4.0, "agad": 3.0}  # panel A, at every n_states
MODELS = {"A": "fc", "B": "fc", "C": "lenet5", "D": "lstm"}


def fig5_replicas() -> pd.DataFrame:
    """Tidy Fig. 5 rows (seed std 0.1); panel D's metric is the test loss (its test error is empty)."""
    rows = []

    def add(panel, algo, sp, n_states, sigma_r, value, repeat, status="completed"):
        metric = dict(test_error=None, test_loss=value) if panel == "D" else dict(test_error=value, test_loss=0.1)
        rows.append(dict(panel=panel, model=MODELS[panel], algo=algo, sp_subtracted=sp, n_states=n_states,
                         sigma_r=sigma_r, repeat=repeat, epochs=2, samples_seen=20000, **metric,
                         test_accuracy=None, status=status))

    for panel in "ABCD":
        for repeat, noise in enumerate(SEED_NOISE):
            add(panel, "fp", "", "", "", 1.9 + 0.1 * noise, repeat)
            for algo in FIG5_SIGMA:
                for sp in ("true", "false"):
                    if panel == "A":
                        for n_states in (10, 20, 40):
                            add(panel, algo, sp, n_states, 0.5, FIG5_STATES[algo] + 0.1 * noise, repeat)
                    else:
                        for sigma_r, value in zip((0.0, 0.5), FIG5_SIGMA[algo]):
                            add(panel, algo, sp, 20, sigma_r, value + 0.1 * noise, repeat)
    add("B", "agad", "true", 20, 0.5, 99.0, 3, status="diverged")  # not completed: left out
    return pd.DataFrame(rows)


def fig6_sweep() -> pd.DataFrame:
    means = {"sgd": (0.30, 0.20), "ttv2": (0.05, 0.08), "cttv2": (0.05, 0.05), "agad": (0.08, 0.08)}
    return pd.DataFrame([dict(algo=algo, w_max=w_max, n_states=int(20 * w_max), seed=seed, samples=1000,
                              eps_w=mean + 0.005 * noise)
                         for algo, pair in means.items() for w_max, mean in zip((1.0, 8.0), pair)
                         for seed, noise in enumerate(SEED_NOISE)])


def table1() -> pd.DataFrame:
    times = {"SGD": 30.8514, "TTv2": 56.2771, "c-TTv2": 56.2771, "AGAD": 62.1286, "MP": 3024.4931}
    rows = [dict(algorithm=a, setting="n_s=2, l_avg=5", time_ns=t) for a, t in times.items()]
    return pd.DataFrame(rows + [dict(algorithm="AGAD", setting="n_s=10, l_max=1", time_ns=17.1143)])


def endurance() -> pd.DataFrame:
    rows = []
    for model, (a, c) in {"fc": (1.0, 2e-4), "lenet5": (3.0, 3e-4)}.items():
        for array, pulses in (("A", a), ("C", c)):
            rows.append(dict(panel="B", model=model, algo="agad", sp_subtracted=True, array=array,
                             max_pulses_per_sample=pulses, mean_pulses_per_sample=pulses / 10))
    return pd.DataFrame(rows)


@pytest.fixture
def figures(tmp_path: Path) -> Path:
    folder = tmp_path / "figures"
    folder.mkdir()
    for name, frame in {"fig3": fig3_traces(), "fig4": fig4_grid(), "fig5": fig5_replicas(), "fig6": fig6_sweep(),
                        "table1": table1(), "fig5_endurance": endurance()}.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    run = folder / "runs" / "weight_programming"  # the run behind fig4.csv: its settings come from here
    run.mkdir(parents=True)
    shutil.copyfile(folder / "fig4.csv", run / "weight_programming.csv")
    (run / "summary.json").write_text(json.dumps({"csv": "/elsewhere/weight_programming.csv",
                                                  "config": {"experiment": {"scale": "reduced", "lr": 0.1}}}))
    return folder


def verdicts(folder: Path) -> dict[tuple[str, str], str]:
    return {(row.section.split(":")[0], row.claim): row.verdict for row in claim_rows(folder)}


def row_of(folder: Path, section: str, claim: str):
    (row,) = [r for r in claim_rows(folder) if r.section.startswith(section) and r.claim == claim]
    return row


def test_the_report_reads_the_columns_the_experiments_write():
    from analog_train import report
    from analog_train.runner import asymmetry, cost, toy_mechanism, weight_programming

    assert set(report.FIG3_COLUMNS) <= set(toy_mechanism.COLUMNS)
    assert set(report.FIG4_COLUMNS) <= set(weight_programming.COLUMNS)
    assert set(report.FIG6_COLUMNS) <= set(asymmetry.COLUMNS)
    assert set(report.TABLE1_COLUMNS) - {"setting"} <= set(cost.COLUMNS)  # figures.py adds the setting
    assert set(report.PAPER_TIME_NS) == set(cost.ALGORITHMS)


def test_pooled_std_weights_by_degrees_of_freedom_and_needs_two_seeds():
    a, b = Spread.of([1.0, 2.0, 3.0]), Spread.of([0.0, 4.0])  # variances 1 (2 dof) and 8 (1 dof)
    assert pooled_std([a, b]) == pytest.approx(((2 * 1 + 1 * 8) / 3) ** 0.5)
    assert pooled_std([a, Spread.of([5.0])]) == pytest.approx(1.0)  # a single seed adds no degree of freedom
    with pytest.raises(Exception, match="one seed"):
        pooled_std([Spread.of([5.0]), Spread.of([6.0])])


def test_report_has_one_row_per_claim_with_verdicts_that_follow_the_synthetic_data(figures: Path):
    got = verdicts(figures)
    expected = {
        ("Fig. 3", "TTv2 learns without a reference offset (W decreases)"): HOLDS,
        ("Fig. 3", "TTv2 breaks down with offset -0.8: h never reaches threshold, W stalls or moves the wrong way"):
            HOLDS,
        ("Fig. 3", "c-TTv2 still learns with the offset"): HOLDS,
        ("Fig. 3", "c-TTv2 is slowed by the offset"): HOLDS,
        ("Fig. 3", "AGAD is unaffected by the offset: it learns in both cases"): HOLDS,
        ("Fig. 4", "at 20 states and sigma_r = 0, in-memory SGD has eps_w > 25 %"): HOLDS,
        ("Fig. 4", "at 20 states and sigma_r = 0, TTv2 has eps_w ≈ 5 %"): HOLDS,
        ("Fig. 4", "TTv2 degrades once sigma_r ≥ 0.1 (20 states)"): HOLDS,
        ("Fig. 4", "TTv2 reaches eps_w ≈ 9 % at sigma_r = 0.1 (20 states)"): HOLDS,
        ("Fig. 4", "c-TTv2 (`cttv2`) is flat in sigma_r at few states (10-20)"): HOLDS,
        ("Fig. 4", "c-TTv2 (`cttv2_regular`) is flat in sigma_r at few states (10-20)"): FAILS,
        ("Fig. 4", "AGAD is flat in sigma_r at every n_states"): HOLDS,
        ("Fig. 6", "in-memory SGD improves with symmetry (larger w_max)"): HOLDS,
        ("Fig. 6", "TTv2 gets worse with symmetry"): HOLDS,
        ("Fig. 6", "c-TTv2 (`cttv2`) gets worse with symmetry"): FAILS,
        ("Fig. 6", "AGAD is flat in symmetry"): HOLDS,
        ("Table 1", "30.9 / 56.3 / 56.3 / 62.1 / 3024.5 ns for SGD / TTv2 / c-TTv2 / AGAD / MP"): HOLDS,
        ("Table 1", "AGAD with n_s = 10, l_max = 1 takes 17.1 ns (~175x faster than MP)"): HOLDS,
        ("Endurance (Discussion)", "A needs 0.5-4 pulses per input sample (max over devices)"): HOLDS,
        ("Endurance (Discussion)", "W (array C) needs 2-4e-4 pulses per input sample"): HOLDS,
        ("Endurance (Discussion)", "A and C are about 4 orders of magnitude apart"): HOLDS,
    }
    assert {k: got.get(k) for k in expected} == expected
    fig5 = {k: v for k, v in got.items() if k[0].startswith("Fig. 5")}
    # A: (cttv2, agad) beat TTv2 + AGAD beats cttv2, per SP variant; B-D: 3 per SP variant + 2 FP comparisons
    assert len(fig5) == 2 * 3 + 3 * (2 * 3 + 2)
    # c-TTv2 rises 2 points at sigma_r 0.5 (s = 0.1): between TTv2 and AGAD, but not near FP
    assert {k for k, v in fig5.items() if v != HOLDS} == {
        (f"Fig. 5{p}", "[W's SP subtracted] cttv2 is near FP") for p in "BCD"}
    assert ("Fig. 5D", "[W's SP subtracted] TTv2's test loss rises with sigma_r") in fig5  # D plots the loss
    assert len(got) == len(claim_rows(figures))  # no claim twice


def test_rows_carry_the_measured_numbers_settings_and_criterion(figures: Path):
    row = row_of(figures, "Fig. 4", "at 20 states and sigma_r = 0, in-memory SGD has eps_w > 25 %")
    assert row.measured == "sgd at 20 states, sigma_r 0: 30.0 ± 0.5 %"  # the last checkpoint, in %
    assert row.settings == "1000 samples, 3 seeds, scale reduced, lr 0.1, run: runs/weight_programming"
    assert row.criterion == "mean − 2 × seed std > 25 %"
    row = row_of(figures, "Fig. 5B", "[W's SP subtracted] agad is near FP")
    assert row.measured.startswith("FP 1.90 ± 0.10 % (3 repeats); agad − FP per sigma_r: 0: +0.10 (s = 0.10)")
    assert "fc, n_states 20, 2 epochs, 20000 samples seen, 3 repeats" in row.settings
    assert "1 replica(s) of the panel left out" in row.settings  # the diverged one
    row = row_of(figures, "Fig. 3", "c-TTv2 still learns with the offset")
    assert row.measured.startswith("offset -0.8: W +0.000 -> -0.120; pulses 6 down / 0 up")


def test_a_missing_or_unusable_csv_gives_not_measured_rows_not_an_error(figures: Path):
    (figures / "fig5.csv").unlink()
    pd.read_csv(figures / "fig6.csv").drop(columns="eps_w").to_csv(figures / "fig6.csv", index=False)
    fig4 = pd.read_csv(figures / "fig4.csv")
    fig4[fig4.seed == 0].to_csv(figures / "fig4.csv", index=False)  # one seed: no spread to judge by
    rows = claim_rows(figures)
    for row in rows:
        if row.section.startswith(("Fig. 5", "Fig. 6")):
            assert row.verdict == NOT_MEASURED and row.settings == ""
    assert {r.measured for r in rows if r.section.startswith("Fig. 5")} == {"fig5.csv not found"}
    assert {r.measured for r in rows if r.section.startswith("Fig. 6")} == {"fig6.csv lacks column(s) eps_w"}
    fig4_rows = [r for r in rows if r.section.startswith("Fig. 4")]
    assert {r.verdict for r in fig4_rows} == {NOT_MEASURED}
    assert any(r.measured == "one seed per setting: no seed spread to judge by" for r in fig4_rows)
    assert {r.verdict for r in rows if r.section.startswith("Table 1")} == {HOLDS}  # the others still measured
    text = write_report(figures).read_text()
    assert "- `fig5.csv`: missing (its claims are not measured)" in text


def test_changing_one_csv_value_changes_that_row_and_only_that_row(figures: Path):
    claim = "[W's SP subtracted] TTv2's test error rises with sigma_r"
    before = row_of(figures, "Fig. 5B", claim)
    assert before.verdict == HOLDS
    report_before = write_report(figures).read_text()
    df = pd.read_csv(figures / "fig5.csv", dtype=str, keep_default_na=False)
    one = (df.panel == "B") & (df.algo == "ttv2") & (df.sp_subtracted == "true") & (df.sigma_r == "0.5") \
        & (df.repeat == "2")
    assert one.sum() == 1
    df.loc[one, "test_error"] = "2.1"  # one replica of TTv2 at sigma_r 0.5 no longer collapses
    df.to_csv(figures / "fig5.csv", index=False)
    after = row_of(figures, "Fig. 5B", claim)
    assert after.measured != before.measured and "sigma_r 0.5: 7.33 ± 4.53 %; rise 5.33, s = 3.21" in after.measured
    assert after.verdict == FAILS  # the rise is now within 2 seed stds
    report_after = write_report(figures).read_text()
    changed = [b for a, b in zip(report_before.splitlines(), report_after.splitlines()) if a != b]
    changed_claims = [line.split(" | ")[0].lstrip("| ") for line in changed if line.startswith("| ")]
    # the row itself, and panel B's c-TTv2 "between" row, which compares against TTv2's rise
    assert changed_claims == [claim, "[W's SP subtracted] cttv2 lies between: its rise with sigma_r is below "
                                     "TTv2's, not below AGAD's"]


def test_report_file_says_what_when_and_from_which_files(figures: Path, tmp_path: Path):
    path = write_report(figures, tmp_path / "out" / "claims.md")
    text = path.read_text()
    assert text.startswith("# Claims report: Rasch et al., Nat. Commun. 15:7133 (2024)")
    assert "at commit " in text and "analog-train report --figures" in text
    for name in ("fig3.csv", "fig4.csv", "fig5.csv", "fig6.csv", "table1.csv", "fig5_endurance.csv"):
        assert f"- `{name}`: written " in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert len(rows) == len(claim_rows(figures)) and all(line.count(" | ") == 4 for line in rows)
    assert f"**{sum('**holds**' in r for r in rows)} hold, 5 do not hold, 0 not measured.**" in text
    assert write_report(figures) == figures / "REPORT.md"


def test_cli_report_writes_the_file_and_a_missing_folder_is_one_line(figures: Path, tmp_path: Path):
    proc = run_cli(tmp_path, "report", "--figures", str(figures))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {figures / 'REPORT.md'}"
    assert "by `analog-train report --figures" in (figures / "REPORT.md").read_text()
    proc = run_cli(tmp_path, "report", "--figures", "no_such_folder")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: figures folder no_such_folder does not exist (make it with `analog-train figures`)"]
    assert not (tmp_path / "no_such_folder").exists()
