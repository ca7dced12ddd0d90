"""A cheaper training budget, held to the seed spread of the profile's.

What a faster step cannot give: fewer steps, a higher learning
rate or a smaller batch. For every regime and N asked, runs of the profile's
budget and of the cheaper one are trained with the same seeds and compared by
their **best validation SDR**, the selection every table uses (the test
mixtures choose nothing). The cheaper budget *keeps the quality* of a cell when
its mean over seeds is at least the lowest seed of the profile's budget: within
the seed-to-seed spread, or above it.

    weaksep budget --steps 200 --lr 3e-3 --seeds 0 1

writes the per-run rows to ``results/budget_lever.csv`` and what made them to
``results/configs/budget_lever.json``, and prints the comparison. Runs are
cached by config like every other run (and committed models are reused), so
the profile's runs of the study are not trained again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..io import atomic_write_text
from ..reproduce.study import Study

# What a budget may change: run settings (steps, lr) and the profile's batch size.
BUDGET_KEYS = ("steps", "lr", "batch_size")


def _run_row(study: Study, regime: str, n: int, seed: int, budget: str, overrides: dict[str, Any]) -> dict[str, Any]:
    model = study.train(regime, n, seed, **overrides)
    selection = study.selection(model)
    if selection is None:
        raise FileNotFoundError(
            f"run {study.run_files(model)} has no selection.json: it was trained without validation"
        )
    log = pd.read_csv(study.run_files(model) / "log.csv")
    return {
        "regime": regime,
        "n_sources": n,
        "seed": seed,
        "budget": budget,
        "steps": overrides.get("steps", study.profile.steps),
        "lr": overrides.get("lr", study.profile.lr),
        "batch_size": study.profile.batch_size,
        "best_val_sdr": selection["best_val_sdr"],
        "best_val_si_sdr": selection["best_val_si_sdr"],
        "best_step": selection["best_step"],
        "train_seconds": float(log["seconds"].sum()),  # training steps only, as measured when the run was made
    }


def budget_rows(
    study: Study,
    cheaper: dict[str, Any],
    regimes: Sequence[str] = ("unsup", "weak", "sup"),
    sources: Sequence[int] = (2, 3),
    seeds: Sequence[int] = (0, 1),
) -> pd.DataFrame:
    """One row per run: each regime, N and seed at the profile's budget and at ``cheaper``.

    ``cheaper`` maps settings of :data:`BUDGET_KEYS` to their cheaper values, e.g.
    ``{"steps": 200, "lr": 3e-3}``; a ``batch_size`` trains with a copy of the study
    whose profile has that batch.
    """
    unknown = sorted(set(cheaper) - set(BUDGET_KEYS))
    if unknown or not cheaper:
        raise ValueError(f"a cheaper budget sets some of {BUDGET_KEYS}, got {sorted(cheaper)}")
    run_overrides = {k: v for k, v in cheaper.items() if k != "batch_size"}
    small = study
    if "batch_size" in cheaper:
        small = study.sibling(study.profile.replace(batch_size=int(cheaper["batch_size"])))
    rows = []
    for regime in regimes:
        for n in sources:
            for seed in seeds:
                rows.append(_run_row(study, regime, n, seed, "profile", {}))
                rows.append(_run_row(small, regime, n, seed, "cheaper", run_overrides))
    return pd.DataFrame(rows)


def compare_budgets(rows: pd.DataFrame) -> pd.DataFrame:
    """Per regime and N: the profile's seeds (mean, min, max), the cheaper budget's mean, their
    difference, whether the cheaper one keeps the quality, and the ratio of training compute
    (steps x batch) and of measured training seconds (cheaper / profile)."""
    out = []
    for (regime, n), cell in rows.groupby(["regime", "n_sources"], sort=False):
        before, after = cell[cell["budget"] == "profile"], cell[cell["budget"] == "cheaper"]
        low = before["best_val_sdr"].min()
        compute = lambda part: float((part["steps"] * part["batch_size"]).sum())  # noqa: E731
        out.append(
            {
                "regime": regime,
                "n_sources": n,
                "seeds": len(before),
                "profile_mean": before["best_val_sdr"].mean(),
                "profile_min": low,
                "profile_max": before["best_val_sdr"].max(),
                "cheaper_mean": after["best_val_sdr"].mean(),
                "difference": after["best_val_sdr"].mean() - before["best_val_sdr"].mean(),
                "kept": bool(after["best_val_sdr"].mean() >= low),
                "compute_ratio": compute(after) / compute(before),
                "seconds_ratio": after["train_seconds"].sum() / before["train_seconds"].sum(),
            }
        )
    return pd.DataFrame(out)


def budget_lever(
    profile: str | None,
    cheaper: dict[str, Any],
    regimes: Sequence[str] = ("unsup", "weak", "sup"),
    sources: Sequence[int] = (2, 3),
    seeds: Sequence[int] = (0, 1),
    progress: bool = True,
) -> pd.DataFrame:
    """Train and compare the two budgets; write the rows and what made them; return the comparison."""
    study = Study(profile, progress=progress, reuse_committed=True)
    rows = budget_rows(study, cheaper, list(regimes), list(sources), list(seeds))
    table = compare_budgets(rows)
    atomic_write_text(study.results / "budget_lever.csv", rows.to_csv(index=False))
    config = {
        "profile": study.profile.to_dict(),
        "cheaper": cheaper,
        "regimes": list(regimes),
        "sources": list(sources),
        "seeds": list(seeds),
        "rule": "kept: the cheaper budget's mean best validation SDR >= the lowest seed of the profile's budget",
        "comparison": table.to_dict(orient="records"),
    }
    atomic_write_text(study.results / "configs" / "budget_lever.json", json.dumps(config, indent=2) + "\n")
    return table
