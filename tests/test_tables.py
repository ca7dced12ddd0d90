"""weaksep.reproduce.tables: aggregation against scipy, the table layout and its CSV round trip, the cluster bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from weaksep.reproduce import tables


def test_ci95_and_aggregate_against_scipy() -> None:
    rng = np.random.default_rng(1)
    rows = pd.DataFrame(
        {
            "regime": ["weak"] * 7 + ["sup"] * 5,
            "label_fraction": [np.nan] * 7 + [1.0] * 5,
            "sdr": rng.normal(5, 2, 12),
            "si_sdr": rng.normal(3, 1, 12),
        }
    )
    out = tables.aggregate(rows, ["regime", "label_fraction"], ["sdr", "si_sdr"])
    assert list(out.columns) == [
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
    ]
    assert out["ci_low"].isna().all()  # no item column: no cluster bootstrap
    assert len(out) == 4  # the NaN label fraction is a group of its own
    for regime, g in rows.groupby("regime"):
        for metric in ("sdr", "si_sdr"):
            x = g[metric].to_numpy()
            lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
            r = out[(out["regime"] == regime) & (out["metric"] == metric)].iloc[0]
            assert r["mean"] == pytest.approx(x.mean())
            assert r["ci95"] == pytest.approx((hi - lo) / 2)
            assert r["median"] == pytest.approx(np.median(x))
            assert r["n_queries"] == len(x)
    assert np.isnan(tables.ci95_halfwidth(np.array([1.0])))


def test_aggregate_leaves_out_nan_with_a_warning() -> None:
    rows = pd.DataFrame({"regime": ["weak"] * 4, "sdr": [1.0, np.nan, 3.0, 5.0]})
    with pytest.warns(UserWarning, match="1 of 4 sdr values are NaN"):
        out = tables.aggregate(rows, ["regime"], ["sdr"])
    assert out.loc[0, "n_queries"] == 3 and out.loc[0, "mean"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="lack column"):
        tables.aggregate(rows, ["regime"], ["sir"])


def _query_rows(rng: np.random.Generator, with_clap: bool) -> pd.DataFrame:
    rows = []
    for regime, lf, shift in (
        ("weak", np.nan, 6.0),
        ("unsup", np.nan, 3.0),
        ("sup", 1.0, 9.0),
        ("mixture", np.nan, 0.0),
    ):
        for item in range(5):
            for entity in ("violin", "flute"):
                r = {"regime": regime, "n_sources": 2, "label_fraction": lf, "item": item, "entity": entity}
                r.update({m: shift + rng.normal() for m in ("sdr", "sir", "sar", "sdri", "si_sdr")})
                if with_clap and regime != "mixture":
                    r["clap_sim"] = 0.1 * shift
                rows.append(r)
    return pd.DataFrame(rows)


def test_summarise_table_layout(tmp_path) -> None:
    rng = np.random.default_rng(2)
    rows = _query_rows(rng, with_clap=True)
    table = tables.summarise_table(rows, "two_source", "smoke")
    assert list(table.columns) == list(tables.TABLE_COLUMNS)
    assert list(table["regime"].unique()) == ["mixture", "unsup", "weak", "sup"]
    # 5 bss/si metrics for 4 regimes, clap_sim for the 3 separating regimes
    assert len(table) == 4 * 5 + 3
    assert set(table.loc[table["regime"] == "mixture", "metric"]) == {"sdr", "sir", "sar", "sdri", "si_sdr"}
    assert (table["n_queries"] == 10).all() and (table["profile"] == "smoke").all()
    weak_sdr = table[(table["regime"] == "weak") & (table["metric"] == "sdr")].iloc[0]
    x = rows.loc[rows["regime"] == "weak", "sdr"]
    assert weak_sdr["mean"] == pytest.approx(x.mean()) and weak_sdr["ci95"] == pytest.approx(tables.ci95_halfwidth(x))

    path = tables.save_table(table, tmp_path / "01_two_source.csv")
    back = tables.load_table(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"bad.csv lacks column"):
        tables.load_table(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="lack column"):
        tables.summarise_table(rows.drop(columns=["sdri"]), "two_source", "smoke")


def test_cluster_bootstrap_resamples_seeds_and_items_not_queries() -> None:
    """Two queries of one item that always move together count as one cluster: the interval is that
    of the item means, and a seed offset widens it; a paired difference keeps its pairing."""
    from weaksep.evaluation import stats as wstats

    rng = np.random.default_rng(0)
    item_level = rng.normal(0, 2, 40)
    rows = pd.DataFrame(
        [
            {"seed": s, "item": i, "query": q, "sdr": item_level[i] + 0.5 * s}
            for s in range(3)
            for i in range(40)
            for q in range(2)
        ]
    )
    cells, seeds, items = wstats.cell_means(rows, "sdr")
    assert cells.shape == (3, 40) and seeds == [0, 1, 2] and len(items) == 40
    est, low, high = wstats.bootstrap({"x": cells}, lambda r: r["x"], n_boot=4000)
    assert est == pytest.approx(rows["sdr"].mean())
    # crossed resampling: the variance of the mean is that of the 40 item means plus that of the 3 seed offsets
    half = 1.96 * np.sqrt(item_level.var() / 40 + np.var([0.0, 0.5, 1.0]) / 3)
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    no_seeds, nlow, nhigh = wstats.bootstrap({"x": cells[:1]}, lambda r: r["x"], n_boot=4000)
    assert (nhigh - nlow) / 2 == pytest.approx(1.96 * item_level.std() / np.sqrt(40), rel=0.15)
    # a paired difference of two regimes with the same item effects has no item spread left
    other = {"a": cells, "b": cells - 1.0}
    d, dlow, dhigh = wstats.bootstrap(other, lambda r: r["a"] - r["b"])
    assert d == pytest.approx(1.0) and dlow == pytest.approx(1.0) and dhigh == pytest.approx(1.0)
    assert wstats.verdict(0.2, 0.9, 0.1) == "reproduced" and wstats.verdict(-0.5, 0.05, 0.1) == "not reproduced"
    assert wstats.verdict(0.0, 0.9, 0.1) == "inconclusive"
