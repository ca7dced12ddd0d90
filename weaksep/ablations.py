"""Ablation tables: the result-table columns plus the ablated setting and a paired gain.

Every ablation compares settings on the *same* saved mixtures, so the fair
comparison is paired: for each query, the setting's SDR minus the reference
setting's SDR on the same source of the same mixture. Its 95 % interval is
much narrower than the two settings' own intervals, which overlap whenever
the queries vary more than the settings do.

``results/07_ablations_<section>.csv`` has :data:`ABLATION_COLUMNS`:
``setting`` names the ablated setting, ``value`` is its number when it has
one (a weight, a fraction, a step, a CLAP accuracy), and ``paired_*`` give
the mean paired difference to the section's reference setting (± 95 % CI)
for the same metric and N.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
import numpy as np
import pandas as pd

from .metrics import METRICS, TABLE_COLUMNS, aggregate, ci95_halfwidth, load_table, save_table

ABLATION_METRICS = (*METRICS, "clap_top1")  # clap_top1: share of queries whose CLAP top class is the entity
ABLATION_COLUMNS = (*TABLE_COLUMNS, "section", "setting", "value", "paired_vs", "paired_diff", "paired_ci95", "paired_n")


def paired_difference(rows: pd.DataFrame, setting: str, reference: str, metric: str = "sdr") -> pd.DataFrame:
    """Per N: mean over queries of ``metric`` of ``setting`` minus ``reference``'s on the same queries, ± 95 % CI.

    Args:
        rows: per-query rows with ``setting, n_sources, item, query`` and ``metric``.
    Returns:
        Columns ``n_sources, paired_diff, paired_ci95, paired_n`` (NaN values are dropped pairwise).
    """
    keys = ["n_sources", "item", "query"]
    ref = rows[rows["setting"] == reference].set_index(keys)[metric]
    if ref.empty:
        raise ValueError(f"reference setting {reference!r} has no rows; settings are {sorted(rows['setting'].unique())}")
    out = []
    for n, group in rows[rows["setting"] == setting].groupby("n_sources"):
        joined = group.set_index(keys)[metric].to_frame("x").join(ref.rename("ref"), how="inner")
        diff = (joined["x"] - joined["ref"]).dropna().to_numpy(np.float64)
        if diff.size:  # a setting without this metric (the clean sources' SDR) has no pairs
            out.append({"n_sources": n, "paired_diff": float(diff.mean()), "paired_ci95": ci95_halfwidth(diff),
                        "paired_n": int(diff.size)})
    return pd.DataFrame(out, columns=["n_sources", "paired_diff", "paired_ci95", "paired_n"])


def summarise_ablation(rows: pd.DataFrame, section: str, profile: str,
                       reference: str | Mapping[str, str] | None = None,
                       values: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The table of one ablation section, columns :data:`ABLATION_COLUMNS`.

    Args:
        rows: per-query rows (from :meth:`weaksep.study.Study.evaluate`) with a
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
    paired = [paired_difference(rows, setting, ref, metric).assign(setting=setting, metric=metric)
              for setting, ref in pairs.items() for metric in metrics if metric != "clap_top1"]
    paired_cols = ["n_sources", "setting", "metric", "paired_diff", "paired_ci95", "paired_n"]
    agg = agg.merge(pd.concat(paired)[paired_cols] if paired else pd.DataFrame(columns=paired_cols),
                    on=["n_sources", "setting", "metric"], how="left")
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
    cols = ["n_sources", "setting", "regime", "label_fraction", "value", "mean", "ci95", "n_queries",
            "paired_vs", "paired_diff", "paired_ci95"]
    return table.loc[table["metric"] == metric, cols].reset_index(drop=True)


def verdict(diff: float, ci95: float) -> str:
    """A paired difference in words: better / worse when its 95 % interval excludes 0, else 'overlaps'."""
    if not np.isfinite(diff):
        return "n/a"
    if not np.isfinite(ci95) or abs(diff) <= ci95:
        return "overlaps"
    return "better" if diff > 0 else "worse"


def add_verdicts(view: pd.DataFrame) -> pd.DataFrame:
    """:func:`sdr_view` plus a ``vs_reference`` column from :func:`verdict`."""
    out = view.copy()
    out["vs_reference"] = [verdict(d, c) if ref else "" for d, c, ref in
                           zip(out["paired_diff"], out["paired_ci95"], out["paired_vs"])]
    return out

