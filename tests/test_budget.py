"""The cheaper-budget comparison (weaksep/tools/budget.py): its rule and its bookkeeping."""

import json

import pandas as pd
import pytest

from weaksep.tools.budget import budget_rows, compare_budgets


def _rows(before: list[float], after: list[float], steps_after: int = 200) -> pd.DataFrame:
    rows = []
    for budget, values, steps in (("profile", before, 400), ("cheaper", after, steps_after)):
        for seed, sdr in enumerate(values):
            rows.append(
                {
                    "regime": "weak",
                    "n_sources": 2,
                    "seed": seed,
                    "budget": budget,
                    "steps": steps,
                    "batch_size": 8,
                    "best_val_sdr": sdr,
                    "train_seconds": steps * 0.5,
                }
            )
    return pd.DataFrame(rows)


def test_a_cheaper_budget_keeps_the_quality_when_its_mean_reaches_the_lowest_seed():
    kept = compare_budgets(_rows([6.0, 6.4], [6.1, 6.0])).iloc[0]
    assert kept["kept"] and kept["difference"] == pytest.approx(-0.15)
    assert kept["compute_ratio"] == pytest.approx(0.5) and kept["seconds_ratio"] == pytest.approx(0.5)
    lost = compare_budgets(_rows([6.0, 6.4], [5.9, 6.0])).iloc[0]
    assert not lost["kept"] and lost["profile_min"] == 6.0 and lost["cheaper_mean"] == pytest.approx(5.95)


class _Study:
    """Training returns a run folder whose selection and log depend on the budget asked for."""

    def __init__(self, tmp_path):
        from weaksep.profiles import get_profile

        self.profile, self.tmp, self.asked = get_profile("smoke"), tmp_path, []

    def train(self, regime, n, seed, **overrides):
        self.asked.append((regime, n, seed, overrides))
        run = self.tmp / f"{regime}{n}{seed}{sorted(overrides.items())}"
        run.mkdir()
        steps = overrides.get("steps", self.profile.steps)
        sdr = 5.0 + seed + (0.5 if "lr" in overrides else 0.0)
        (run / "selection.json").write_text(
            json.dumps({"best_val_sdr": sdr, "best_val_si_sdr": sdr, "best_step": steps})
        )
        pd.DataFrame({"seconds": [0.25] * steps}).to_csv(run / "log.csv", index=False)
        return run / "best.pt"

    def run_files(self, model):
        return model.parent

    def selection(self, model):
        return json.loads((model.parent / "selection.json").read_text())


def test_budget_rows_train_each_cell_at_both_budgets_with_the_same_seeds(tmp_path):
    study = _Study(tmp_path)
    rows = budget_rows(study, {"steps": 10, "lr": 3e-3}, regimes=("weak",), sources=(2,), seeds=(0, 1))
    assert [a[3] for a in study.asked] == [{}, {"steps": 10, "lr": 3e-3}] * 2
    table = compare_budgets(rows).iloc[0]
    assert table["kept"] and table["difference"] == pytest.approx(0.5)
    assert table["compute_ratio"] == pytest.approx(10 / study.profile.steps)
    assert rows.loc[rows["budget"] == "cheaper", "lr"].tolist() == [3e-3, 3e-3]
    with pytest.raises(ValueError, match="cheaper budget"):
        budget_rows(study, {"epochs": 3})


def test_a_batch_budget_trains_a_sibling_study_with_that_batch(smoke_study):
    """The batch lever for real: the cheaper runs train with the smaller batch, in the same cache."""
    rows = budget_rows(smoke_study, {"batch_size": 2, "steps": 4}, regimes=("unsup",), sources=(2,), seeds=(0,))
    by_budget = rows.set_index("budget")
    assert by_budget.loc["profile", "batch_size"] == smoke_study.profile.batch_size
    assert by_budget.loc["cheaper", "batch_size"] == 2 and by_budget.loc["cheaper", "steps"] == 4
    assert rows["best_val_sdr"].notna().all()
    table = compare_budgets(rows).iloc[0]
    assert table["compute_ratio"] == pytest.approx(2 * 4 / (smoke_study.profile.batch_size * smoke_study.profile.steps))
