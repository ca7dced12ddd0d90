"""The study's result tables: per-query score rows aggregated over seeds and test mixtures, and their CSVs.

A table (columns :data:`TABLE_COLUMNS`) has one row per number of sources x
regime x label fraction x metric, regimes in :data:`REGIME_ORDER` and metrics
in :data:`METRICS`, each with its mean, median, the naive 95 % t-interval over
queries (``ci95``) and the 95 % cluster-bootstrap interval over seeds and test
mixtures (``ci_low``, ``ci_high``; :mod:`weaksep.evaluation.stats`). The per-query rows
come from :mod:`weaksep.evaluation.scores`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from weaksep.evaluation.scores import MIXTURE
from weaksep.evaluation.stats import mean_interval
from weaksep.io import atomic_write_text

METRICS = ("sdr", "sir", "sar", "sdri", "si_sdr", "clap_sim")
TABLE_COLUMNS = (
    "table",
    "n_sources",
    "regime",
    "label_fraction",
    "metric",
    "mean",
    "ci95",
    "median",
    "n_queries",
    "n_seeds",
    "ci_low",
    "ci_high",
    "profile",
)
REGIME_ORDER = (MIXTURE, "unsup", "weak", "sup", "semi")


def ci95_halfwidth(values: np.ndarray) -> float:
    """Half-width of the 95 % Student-t confidence interval of the mean (NaN for n < 2)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n < 2 or not np.isfinite(values).all():  # e.g. the mixture's SAR, +inf by definition
        return float("nan")
    return float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))


def aggregate(rows: pd.DataFrame, by: list[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per-group statistics of per-query metrics, long format.

    Args:
        rows: one row per query, with the columns ``by`` and ``metrics``.
        by: grouping columns (NaN keys are kept as their own group).
        metrics: metric columns to summarise, in output order.

    Returns:
        Columns ``by + [metric, mean, ci95, median, n_queries, n_seeds, ci_low, ci_high]``.
        ``ci_low``/``ci_high`` bound the 95 % cluster-bootstrap interval of the
        mean, resampling seeds and test mixtures (``weaksep.evaluation.stats``; needs the
        ``item`` column, and ``seed`` when there are several); ``ci95`` is the
        half-width of the naive t-interval over queries, kept for comparison
        with earlier tables. NaN values (metrics that do not apply) are left out
        with a warning; a group whose metric is all NaN (e.g. ``clap_sim`` of
        the mixture) gets ``n_queries`` 0 and NaN statistics.
    """
    missing = [c for c in [*by, *metrics] if c not in rows.columns]
    if missing:
        raise ValueError(f"rows lack column(s) {missing}; they have {list(rows.columns)}")
    out = []
    for key, group in rows.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for metric in metrics:
            values = group[metric].to_numpy(dtype=np.float64)
            n_nan = int(np.isnan(values).sum())
            # An all-NaN group lacks the metric (e.g. no clap_sim for the mixture
            # baseline): n_queries 0, no warning. A partly-NaN group had silent estimates.
            if 0 < n_nan < values.size:
                warnings.warn(
                    f"{n_nan} of {values.size} {metric} values are NaN (silent estimates) in group "
                    f"{dict(zip(by, key))}; they are left out of the statistics",
                    stacklevel=2,
                )
            values = values[~np.isnan(values)]
            row = {
                **dict(zip(by, key)),
                "metric": metric,
                "mean": float(values.mean()) if values.size else float("nan"),
                "ci95": ci95_halfwidth(values),
                "median": float(np.median(values)) if values.size else float("nan"),
                "n_queries": int(values.size),
                "n_seeds": int(group["seed"].nunique()) if "seed" in group.columns else 1,
                "ci_low": float("nan"),
                "ci_high": float("nan"),
            }
            if values.size and "item" in group.columns and np.isfinite(values).all():  # not SAR = inf of the mixture
                interval = mean_interval(group[group[metric].notna()], metric)
                row.update(ci_low=interval["ci_low"], ci_high=interval["ci_high"])
            out.append(row)
    return pd.DataFrame(
        out, columns=[*by, "metric", "mean", "ci95", "median", "n_queries", "n_seeds", "ci_low", "ci_high"]
    )


def _regime_rank(regime: str) -> int:
    return REGIME_ORDER.index(regime) if regime in REGIME_ORDER else len(REGIME_ORDER)


def summarise_table(query_rows: pd.DataFrame, table: str, profile: str) -> pd.DataFrame:
    """The result table of one study notebook: one row per regime x N x label fraction x metric.

    Args:
        query_rows: one row per query with columns ``regime, n_sources,
            label_fraction, sdr, sir, sar, sdri, si_sdr`` (and optionally
            ``clap_sim``, ``item``, ``entity``). Rows with regime ``"mixture"``
            (see :func:`weaksep.evaluation.scores.evaluate_regimes`) give the unprocessed-mixture baseline.
        table: the table name, e.g. ``"two_source"``.
        profile: the profile name that produced the rows.

    Returns:
        Columns :data:`TABLE_COLUMNS`, sorted by N, regime (mixture, unsup,
        weak, sup, semi, others), label fraction and metric (order of :data:`METRICS`).
    """
    required = ["regime", "n_sources", "label_fraction", "sdr", "sir", "sar", "sdri", "si_sdr"]
    missing = [c for c in required if c not in query_rows.columns]
    if missing:
        raise ValueError(
            f"query rows of table {table!r} lack column(s) {missing}; they have {list(query_rows.columns)}"
        )
    metrics = [m for m in METRICS if m in query_rows.columns]
    rows = query_rows.copy()
    rows["label_fraction"] = rows["label_fraction"].astype(np.float64)
    agg = aggregate(rows, ["n_sources", "regime", "label_fraction"], metrics)
    # clap_sim is absent for the mixture baseline: drop its empty rows.
    agg = agg[agg["n_queries"] > 0]
    agg.insert(0, "table", table)
    agg["profile"] = profile
    agg = agg.assign(
        _r=agg["regime"].map(_regime_rank), _m=agg["metric"].map(METRICS.index), _lf=agg["label_fraction"].fillna(-1)
    )
    agg = agg.sort_values(["n_sources", "_r", "regime", "_lf", "_m"]).drop(columns=["_r", "_m", "_lf"])
    agg["n_sources"] = agg["n_sources"].astype(int)
    return agg[list(TABLE_COLUMNS)].reset_index(drop=True)


def save_table(table: pd.DataFrame, path: str | Path, columns: Sequence[str] = TABLE_COLUMNS) -> Path:
    """Write a result table (columns :data:`TABLE_COLUMNS`, or ``columns``) to CSV atomically."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"result table for {path} lacks column(s) {missing}")
    return atomic_write_text(path, table[list(columns)].to_csv(index=False))


def load_table(path: str | Path, columns: Sequence[str] = TABLE_COLUMNS) -> pd.DataFrame:
    """Read a result table CSV, checking it has the columns :data:`TABLE_COLUMNS` (or ``columns``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"result table {path} does not exist")
    df = pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"result table {path} lacks column(s) {missing}; expected {list(columns)}")
    return df
