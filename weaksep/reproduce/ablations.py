"""Ablation tables: the result-table columns plus the ablated setting and a paired gain.

Every ablation compares settings on the *same* saved mixtures, so the fair
comparison is paired: for each query, the setting's SDR minus the reference
setting's SDR on the same source of the same mixture (and seed). Its 95 %
interval (``paired_ci_low``, ``paired_ci_high``) is a cluster bootstrap that
resamples seeds and test mixtures (:mod:`weaksep.evaluation.stats`), not queries as if
independent; it is much narrower than the two settings' own intervals, which
overlap whenever the mixtures vary more than the settings do.

``results/07_ablations_<section>.csv`` has :data:`ABLATION_COLUMNS`:
``setting`` names the ablated setting, ``value`` is its number when it has
one (a weight, a fraction, a step, a CLAP accuracy), and ``paired_*`` give
the mean paired difference to the section's reference setting for the same
metric and N, its cluster-bootstrap 95 % interval and, for comparison with
earlier tables, the half-width of the naive t-interval over queries (``paired_ci95``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..evaluation.stats import bootstrap, cell_means
from ..evaluation.stats import verdict as interval_verdict
from .tables import METRICS, TABLE_COLUMNS, aggregate, ci95_halfwidth, load_table, save_table

ABLATION_METRICS = (*METRICS, "clap_top1")  # clap_top1: share of queries whose CLAP top class is the entity
ABLATION_COLUMNS = (
    *TABLE_COLUMNS,
    "section",
    "setting",
    "value",
    "paired_vs",
    "paired_diff",
    "paired_ci95",
    "paired_ci_low",
    "paired_ci_high",
    "paired_n",
)
PAIRED_COLUMNS = ("paired_diff", "paired_ci95", "paired_ci_low", "paired_ci_high", "paired_n")


def paired_difference(rows: pd.DataFrame, setting: str, reference: str, metric: str = "sdr") -> pd.DataFrame:
    """Per N: mean over queries of ``metric`` of ``setting`` minus ``reference``'s on the same queries,
    with its 95 % cluster-bootstrap interval over seeds and test mixtures.

    Args:
        rows: per-query rows with ``setting, n_sources, item, query`` and ``metric`` (and
            ``seed`` when several seeds: a query is paired with the same query of the same seed).
    Returns:
        Columns ``n_sources`` and :data:`PAIRED_COLUMNS` (NaN values are dropped pairwise).
    """
    keys = ["n_sources", "item", "query", *(["seed"] if "seed" in rows.columns else [])]
    ref = rows[rows["setting"] == reference].set_index(keys)[metric]
    if ref.empty:
        raise ValueError(
            f"reference setting {reference!r} has no rows; settings are {sorted(rows['setting'].unique())}"
        )
    out = []
    for n, group in rows[rows["setting"] == setting].groupby("n_sources"):
        joined = group.set_index(keys)[metric].to_frame("x").join(ref.rename("ref"), how="inner")
        pairs = (joined["x"] - joined["ref"]).dropna().rename("diff").reset_index()
        diff = pairs["diff"].to_numpy(np.float64)
        if diff.size:  # a setting without this metric (the clean sources' SDR) has no pairs
            _, low, high = bootstrap({"diff": cell_means(pairs, "diff")[0]}, lambda r: r["diff"])
            out.append(
                {
                    "n_sources": n,
                    "paired_diff": float(diff.mean()),
                    "paired_ci95": ci95_halfwidth(diff),
                    "paired_ci_low": low,
                    "paired_ci_high": high,
                    "paired_n": int(diff.size),
                }
            )
    return pd.DataFrame(out, columns=["n_sources", *PAIRED_COLUMNS])


def summarise_ablation(
    rows: pd.DataFrame,
    section: str,
    profile: str,
    reference: str | Mapping[str, str] | None = None,
    values: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The table of one ablation section, columns :data:`ABLATION_COLUMNS`.

    Args:
        rows: per-query rows (from :meth:`weaksep.reproduce.study.Study.evaluate`) with a
            ``setting`` column naming the ablated setting of each run.
        section: the section name, e.g. ``"loss"``; the table is ``07_ablations_<section>``.
        reference: the setting every other setting is compared with (at each N),
            or a mapping setting -> its own reference (e.g. ``semi@5%`` -> ``sup@5%``).
        values: setting -> its number (weight, fraction, step, CLAP accuracy), for plots.
    """
    if "setting" not in rows.columns:
        raise ValueError("ablation rows need a 'setting' column naming the ablated setting of each run")
    rows = rows.copy()
    rows["label_fraction"] = rows["label_fraction"].astype(np.float64)
    metrics = [m for m in ABLATION_METRICS if m in rows.columns]
    order = list(dict.fromkeys(rows["setting"]))
    agg = aggregate(rows, ["n_sources", "setting", "regime", "label_fraction"], metrics)
    agg = agg[agg["n_queries"] > 0].copy()
    agg["table"] = f"07_ablations_{section}"
    agg["profile"] = profile
    agg["section"] = section
    agg["value"] = agg["setting"].map(dict(values or {})).astype(np.float64)
    if isinstance(reference, str):
        pairs = {s: reference for s in order if s != reference}
    else:
        pairs = dict(reference or {})
    unknown = sorted({*pairs, *pairs.values()} - set(order))
    if unknown:
        raise ValueError(f"paired settings {unknown} have no rows; settings are {order}")
    agg["paired_vs"] = agg["setting"].map(pairs).fillna("")
    paired = [
        paired_difference(rows, setting, ref, metric).assign(setting=setting, metric=metric)
        for setting, ref in pairs.items()
        for metric in metrics
        if metric != "clap_top1"
    ]
    paired_cols = ["n_sources", "setting", "metric", *PAIRED_COLUMNS]
    agg = agg.merge(
        pd.concat(paired)[paired_cols] if paired else pd.DataFrame(columns=paired_cols),
        on=["n_sources", "setting", "metric"],
        how="left",
    )
    agg["_s"] = agg["setting"].map(order.index)
    agg["_m"] = agg["metric"].map(list(ABLATION_METRICS).index)
    agg = agg.sort_values(["n_sources", "_s", "_m"]).drop(columns=["_s", "_m"])
    agg["n_sources"] = agg["n_sources"].astype(int)
    return agg[list(ABLATION_COLUMNS)].reset_index(drop=True)


def save_ablation(table: pd.DataFrame, path: str | Path) -> Path:
    """Write an ablation table atomically (columns :data:`ABLATION_COLUMNS`)."""
    return save_table(table, path, ABLATION_COLUMNS)


def load_ablation(path: str | Path) -> pd.DataFrame:
    """Read ``07_ablations_<section>.csv``, checking its columns."""
    df = load_table(path, ABLATION_COLUMNS)
    df["paired_vs"] = df["paired_vs"].fillna("")
    return df


def sdr_view(table: pd.DataFrame, metric: str = "sdr") -> pd.DataFrame:
    """The rows of one metric, with the columns a reader needs (for the notebook's printed tables)."""
    cols = [
        "n_sources",
        "setting",
        "regime",
        "label_fraction",
        "value",
        "mean",
        "ci_low",
        "ci_high",
        "n_queries",
        "n_seeds",
        "paired_vs",
        "paired_diff",
        "paired_ci_low",
        "paired_ci_high",
    ]
    return table.loc[table["metric"] == metric, cols].reset_index(drop=True)


_IN_WORDS = {"reproduced": "better", "not reproduced": "worse", "inconclusive": "overlaps"}


def verdict(diff: float, low: float, high: float) -> str:
    """A paired difference in words: better / worse when its 95 % interval [low, high] lies above /
    below 0, else 'overlaps' (the study's rule, :func:`weaksep.evaluation.stats.verdict`, with 0 as threshold)."""
    if not np.isfinite(diff):
        return "n/a"
    return _IN_WORDS[interval_verdict(low, high, 0.0)]


def add_verdicts(view: pd.DataFrame) -> pd.DataFrame:
    """:func:`sdr_view` plus a ``vs_reference`` column from :func:`verdict`."""
    out = view.copy()
    out["vs_reference"] = [
        verdict(d, lo, hi) if ref else ""
        for d, lo, hi, ref in zip(out["paired_diff"], out["paired_ci_low"], out["paired_ci_high"], out["paired_vs"])
    ]
    return out


# --------------------------------------------------------------------------
# settings, choices and coverage of the sections (used by weaksep.reproduce.ablation_runs)
# --------------------------------------------------------------------------
def by_run(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-query rows whose ``setting`` is the run's label (the usual case: one run per setting)."""
    return rows.assign(setting=rows["run"])


def weight_setting(weight: float) -> str:
    """The setting name of a contrastive weight, e.g. ``w=0.125``."""
    return f"w={weight:g}"


def choose_on_validation(
    rows: pd.DataFrame, candidates: Mapping[str, float], metric: str = "sdr"
) -> tuple[float, dict[float, float]]:
    """The candidate with the best mean ``metric`` on the validation rows.

    Args:
        rows: per-query rows of the validation split, with ``setting`` and ``metric``.
        candidates: setting -> the value it stands for (e.g. ``w=0.5`` -> 0.5), in
            order of preference: a tie goes to the first.
    Returns:
        ``(chosen value, {value: mean metric})``.
    Raises:
        ValueError: a candidate has no scored row (the choice would be silently wrong).
    """
    means = {value: float(rows.loc[rows["setting"] == setting, metric].mean()) for setting, value in candidates.items()}
    missing = [s for s, v in candidates.items() if not np.isfinite(means[v])]
    if missing:
        raise ValueError(
            f"candidate setting(s) {missing} have no finite {metric} on the validation rows; "
            f"settings there are {sorted(rows['setting'].unique())}"
        )
    return max(means, key=means.__getitem__), means


def weight_test_sources(n_sources: int, chosen: float, default: float) -> list[int]:
    """The N at which the weight choice is tested: ``n_sources``, and also N = 2 when it differs from the default."""
    return sorted({n_sources, 2}) if chosen != default else [n_sources]


def fraction_setting(regime: str, fraction: float, seed: int, several_seeds: bool) -> str:
    """``sup@5%`` (``sup@5% s1`` when several seeds are run)."""
    return f"{regime}@{fraction * 100:g}%" + (f" s{seed}" if several_seeds else "")


def labelled_classes(labels: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The classes of the labelled clips that a run at ``fraction`` and ``seed`` trains on."""
    from ..data import labelled_subset

    return {labels[i] for i in labelled_subset(len(labels), fraction, seed)}


def covers_a_mixture_of_mixtures(classes: set[str], n_sources: int) -> bool:
    """Whether labelled clips of ``classes`` can form one mixture of mixtures: 2 N distinct classes."""
    return len(classes) >= 2 * n_sources


@dataclass(frozen=True)
class FractionRun:
    """One (seed, fraction) of the labelled-fraction section: its ``sup`` setting and, below 1, its ``semi`` one."""

    seed: int
    fraction: float
    sup: str
    semi: str | None


def plan_fractions(
    labels: Sequence[str], fractions: Sequence[float], seeds: Sequence[int], n_sources: int
) -> tuple[list[FractionRun], list[str]]:
    """The runs of the labelled-fraction section, and a note for each (seed, fraction) left out.

    A fraction whose labelled clips cover fewer than 2 N classes cannot form one
    mixture of mixtures, so it is not run (tiny corpora at 1 %).
    """
    runs, notes = [], []
    several = len(seeds) > 1
    for seed in seeds:
        for f in fractions:
            classes = labelled_classes(labels, f, seed)
            if not covers_a_mixture_of_mixtures(classes, n_sources):
                notes.append(
                    f"fraction {f:g} (seed {seed}): the labelled clips cover {len(classes)} classes, "
                    f"a mixture of mixtures needs {2 * n_sources}; not run"
                )
                continue
            semi = fraction_setting("semi", f, seed, several) if f < 1 else None
            runs.append(FractionRun(seed, f, fraction_setting("sup", f, seed, several), semi))
    return runs, notes


def clap_variant_steps(pretrain_steps: int, weaker_share: float) -> dict[str, int]:
    """CLAP name -> pretraining steps: the default, a weaker one and an untrained audio tower (0 steps)."""
    weaker = int(pretrain_steps * weaker_share)
    if not 0 < weaker < pretrain_steps:
        raise ValueError(
            f"a share of {weaker_share} of {pretrain_steps} pretraining steps gives {weaker}; "
            "the weaker CLAP needs between 1 and the default's steps - 1"
        )
    return {f"CLAP {pretrain_steps} steps": pretrain_steps, f"CLAP {weaker} steps": weaker, "CLAP untrained": 0}


def clap_variant_rows(rows: pd.DataFrame, clap_name: str) -> pd.DataFrame:
    """The rows of a weak model judged by its own CLAP: the mixture dropped (scored once, beside
    ``unsup``) and the clean sources renamed ``clean · <CLAP>``, one per CLAP."""
    rows = rows[rows["run"] != "mixture"]
    return rows.replace({"run": {"clean": f"clean · {clap_name}"}})


def snapshot_settings(
    snapshots: Mapping[str, Mapping[int, Any]],
) -> tuple[dict[str, Any], dict[str, float], dict[str, str]]:
    """Settings of the training-length section from each regime's snapshots (step -> model).

    Returns ``(runs, values, pairs)``: ``"<regime> @<step>"`` -> model, -> step, and
    every ``weak @<step>`` -> ``unsup @<step>``, its reference at the same step (when unsup has one).
    """
    runs, values, pairs = {}, {}, {}
    unsup_steps = set(snapshots.get("unsup", {}))
    for regime, by_step in snapshots.items():
        for step, model in by_step.items():
            setting = f"{regime} @{step}"
            runs[setting], values[setting] = model, step
            if regime == "weak" and step in unsup_steps:
                pairs[setting] = f"unsup @{step}"
    return runs, values, pairs
