"""Intervals that respect how the study's numbers were made: a cluster bootstrap over seeds and test mixtures.

The N queries of one test mixture share its sources, and the runs of one seed
share their initialisation and batches, so queries are not independent. A
figure of the study (a regime's mean SDR, a gain of one regime over another)
is therefore resampled at the level of its clusters: each bootstrap replicate
draws seeds with replacement and test mixtures (items) with replacement,
crossed (every drawn seed is scored on the same drawn items, as the runs were
scored on the same saved test mixtures), and recomputes the figure from the
per-(seed, item) means. The 95 % interval is the 2.5th-97.5th percentile of
the replicates.

Regimes compared in one figure are resampled *together* (the same items, the
same seed indices when they share their seeds), so a paired difference keeps
its pairing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

N_BOOT = 2000
BOOT_SEED = 0


def cell_means(rows: pd.DataFrame, metric: str) -> tuple[np.ndarray, list[int], list[int]]:
    """(S, I) mean of ``metric`` over the queries of each (seed, item), with the seeds and items.

    ``rows`` are per-query rows of one regime with columns ``item``, ``metric``
    and optionally ``seed`` (0 when absent). A (seed, item) cell without rows is NaN.
    """
    df = rows.assign(seed=rows["seed"] if "seed" in rows.columns else 0)
    table = df.pivot_table(index="seed", columns="item", values=metric, aggfunc="mean")
    return table.to_numpy(dtype=np.float64), [int(s) for s in table.index], [int(i) for i in table.columns]


def bootstrap(
    cells: Mapping[str, np.ndarray],
    statistic: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> tuple[float, float, float]:
    """The figure ``statistic`` of the cell means and its 95 % cluster-bootstrap interval.

    Args:
        cells: regime -> (S_r, I) per-(seed, item) means; every regime has the
            same I items in the same order. Regimes with equal S share their
            seed draws (paired); others are drawn independently.
        statistic: maps {regime: (B,) replicate means} to (B,) figures; it is
            also called once with the plain means (B = 1) for the point estimate.
    Returns:
        (estimate, ci_low, ci_high).
    """
    rng = np.random.default_rng(seed)
    items = {m.shape[1] for m in cells.values()}
    if len(items) != 1:
        raise ValueError(f"regimes compared in one figure must share their test items, got {sorted(items)} items")
    n_items = items.pop()
    item_counts = rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=n_boot)  # (B, I)
    seed_counts: dict[int, np.ndarray] = {}
    replicates, plain = {}, {}
    for name, m in cells.items():
        s = m.shape[0]
        if s not in seed_counts:
            seed_counts[s] = rng.multinomial(s, np.full(s, 1 / s), size=n_boot)  # (B, S)
        m = np.nan_to_num(m, nan=np.nanmean(m))  # a missing cell counts at the regime's mean
        replicates[name] = np.einsum("bs,si,bi->b", seed_counts[s], m, item_counts) / (s * n_items)
        plain[name] = np.array([m.mean()])
    estimate = float(statistic(plain)[0])
    values = statistic(replicates)
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return estimate, float(low), float(high)


def mean_interval(rows: pd.DataFrame, metric: str) -> dict[str, float]:
    """Mean of ``metric`` over seeds and items, its cluster-bootstrap interval and the number of seeds."""
    cells, seeds, _ = cell_means(rows, metric)
    est, low, high = bootstrap({"x": cells}, lambda r: r["x"])
    return {"mean": est, "ci_low": low, "ci_high": high, "n_seeds": len(seeds)}


def verdict(low: float, high: float, threshold: float, higher_is_better: bool = True) -> str:
    """``reproduced`` when the whole interval clears ``threshold``, ``not reproduced`` when the whole
    interval falls short of it, ``inconclusive`` otherwise."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive"
    if higher_is_better:
        return "reproduced" if low >= threshold else "not reproduced" if high < threshold else "inconclusive"
    return "reproduced" if high <= threshold else "not reproduced" if low > threshold else "inconclusive"
