"""Our numbers beside the paper's claims (``docs/METHOD.md#claims``).

One purpose: each claim's figure, interval and verdict, and the summary files
written from them.

Every claim is recomputed from the per-query rows behind the result tables, the
way the paper states it, from the *mean* over all queries of the test mixtures
(each source queried with its own entity), for bss_eval SDR (mir_eval
definition, the paper's metric) and, beside it, SI-SDR:

- weak vs unsup gain, N = 2, 3, 4: ``(weak - unsup) / |unsup| * 100`` (%);
- weak as a share of sup, N = 2: ``weak / sup * 100`` (%);
- semi vs sup on the same 5 % labelled clips, N = 2: ``semi - sup`` (dB) and
  ``(semi - sup) / |sup| * 100`` (%).

A relative figure is meaningless when its denominator is <= 0 dB: the row
then says so, gives the dB difference instead, and its verdict is "not comparable".
Every row also carries the plain difference of the two regimes in dB
(``diff_db`` with its interval), because a ratio over a baseline near 0 dB
swings wildly (an unsup SI-SDR of 0.67 dB puts +351 % on a 2.4 dB gain).

Each figure has a 95 % interval from a cluster bootstrap over seeds and test
mixtures (:mod:`weaksep.evaluation.stats`). The bar a claim must clear: a *gain* claim
needs the paper's sign and at least half its size (paper +71 % -> >= +35.5 %;
paper +6.2 dB -> >= +3.1 dB); the *share* claim (weak reaches 97.5 % of sup)
is about closeness to supervision, so it needs at most twice the paper's
shortfall from 100 % (>= 95 %). The verdict is "reproduced" only when the
whole interval clears the bar, "not reproduced" when the whole interval falls
short of it, and "inconclusive" otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from weaksep.evaluation.stats import bootstrap, cell_means, verdict
from weaksep.reproduce.tables import REGIME_ORDER, load_table

# table name -> file under results/ written by the notebook of that table
TABLE_FILES: dict[str, str] = {
    "two_source": "01_two_source.csv",
    "three_source": "02_three_source.csv",
    "four_source": "03_four_source.csv",
    "semi_supervised": "04_semi_supervised.csv",
    "captioned_events": "08_captioned_events.csv",
    "recorded_events_n2": "09_recorded_events_n2.csv",
    "recorded_events_n3": "09_recorded_events_n3.csv",
}
_N_TABLE = {2: "two_source", 3: "three_source", 4: "four_source"}

PAPER_CLAIMS: list[dict[str, Any]] = [
    *(
        {
            "claim": f"weak_vs_unsup_n{n}",
            "description": f"SDR gain of weak-supervised over unsupervised mix-and-separate, {n}-source",
            "paper": paper,
            "unit": "%",
            "kind": "gain",
            "table": _N_TABLE[n],
            "n_sources": n,
        }
        for n, paper in ((2, 71.0), (3, 102.0), (4, 129.0))
    ),
    {
        "claim": "weak_share_of_sup_n2",
        "description": "weak-supervised SDR as a share of supervised SDR, 2-source (paper: MUSIC)",
        "paper": 97.5,
        "unit": "%",
        "kind": "share",
        "table": "two_source",
        "n_sources": 2,
    },
    {
        "claim": "semi_vs_sup5_n2_db",
        "description": "semi-supervised (5 % labelled) minus supervised on the same 5 %, SDR, 2-source (paper summary)",
        "paper": 6.2,
        "unit": "dB",
        "kind": "gain",
        "table": "semi_supervised",
        "n_sources": 2,
    },
    {
        "claim": "semi_vs_sup5_n2_pct",
        "description": "same, relative SDR gain (paper abstract: 'up to' 17 %)",
        "paper": 17.0,
        "unit": "%",
        "kind": "gain",
        "table": "semi_supervised",
        "n_sources": 2,
    },
]

PAPER_CLAIMS.append(
    {
        "claim": "weak_vs_unsup_events_n2",
        "description": "SDR gain of weak-supervised over unsupervised on captioned sound events, 2-source "
        "(paper: VGGSound and AudioCaps; it states an improvement, our summary of it has no figure, "
        "so the sign is judged)",
        "paper": float("nan"),
        "unit": "dB",
        "kind": "sign",
        "table": "captioned_events",
        "n_sources": 2,
    }
)

PAPER_CLAIMS.extend(
    {
        "claim": f"weak_vs_unsup_recorded_n{n}",
        "description": f"SDR gain of weak-supervised over unsupervised on recorded sound events, {n}-source "
        "(the paper's VGGSound statement, on real recordings; no figure to compare, the sign is judged)",
        "paper": float("nan"),
        "unit": "dB",
        "kind": "sign",
        "table": f"recorded_events_n{n}",
        "n_sources": n,
    }
    for n in (2, 3)
)

SEMI_FRACTION = 0.05
CLAIM_METRICS = ("sdr", "si_sdr")
COMPARISON_COLUMNS = [
    "claim",
    "metric",
    "description",
    "unit",
    "paper",
    "ours",
    "ci_low",
    "ci_high",
    "threshold",
    "verdict",
    "n_seeds",
    "diff_db",
    "diff_low",
    "diff_high",
    "sentence",
]


def load_tables(results_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The result tables present in ``results_dir`` (missing files are simply absent)."""
    results_dir = Path(results_dir)
    return {name: load_table(results_dir / f) for name, f in TABLE_FILES.items() if (results_dir / f).is_file()}


def load_query_rows(results_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The per-query rows behind each result table (``results/queries/<file>``), where present."""
    results_dir = Path(results_dir)
    out = {}
    for name, f in TABLE_FILES.items():
        path = results_dir / "queries" / f
        if path.is_file():
            out[name] = pd.read_csv(path)
    return out


class _NotRun(Exception):
    """A regime or table the comparison needs is missing."""


def _semi_fraction(queries: Mapping[str, pd.DataFrame]) -> float:
    """The labelled fraction of the semi-supervised table's ``semi`` run (the paper's 5 % when absent).

    The paper's claim is at 5 %; a run at another fraction (the smoke profile
    uses 25 % so that its tiny corpus covers every class) is compared at its own.
    """
    df = queries.get("semi_supervised")
    if df is None:
        return SEMI_FRACTION
    fr = df.loc[df["regime"] == "semi", "label_fraction"].astype(float)
    return float(fr.min()) if len(fr) else SEMI_FRACTION


def _regime_rows(
    queries: Mapping[str, pd.DataFrame], table: str, regime: str, n: int, label_fraction: float | None = None
) -> pd.DataFrame:
    """Per-query rows of ``regime`` on the N = ``n`` test mixtures of ``table``.

    With ``label_fraction`` the rows must have that fraction; without, the
    largest fraction present is taken, so ``sup`` means supervised training on all clips.
    """
    if table not in queries:
        raise _NotRun(f"queries/{TABLE_FILES.get(table, table + '.csv')} is missing (its notebook has not run)")
    df = queries[table]
    sel = df[(df["regime"] == regime) & (df["n_sources"] == n)]
    if sel.empty:
        raise _NotRun(f"table {table} has no '{regime}' rows for N={n}")
    fractions = sel["label_fraction"].astype(float).fillna(1.0)
    want = label_fraction if label_fraction is not None else float(fractions.max())
    sel = sel[np.isclose(fractions, want)]
    if sel.empty:
        raise _NotRun(f"table {table} has no '{regime}' rows for N={n} with label_fraction {want:g}")
    return sel


def _fmt(x: float, unit: str) -> str:
    if not np.isfinite(x):
        return "an improvement, no figure"
    return f"{x:+.1f} dB" if unit == "dB" else f"{x:.1f} %"


def _claim_regimes(
    claim: dict[str, Any], queries: Mapping[str, pd.DataFrame]
) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    n = claim["n_sources"]
    if claim["claim"].startswith("weak_vs_unsup"):
        return (
            _regime_rows(queries, claim["table"], "weak", n),
            _regime_rows(queries, claim["table"], "unsup", n),
            "weak",
            "unsup",
        )
    if claim["kind"] == "share":
        return (
            _regime_rows(queries, claim["table"], "weak", n),
            _regime_rows(queries, claim["table"], "sup", n),
            "weak",
            "sup",
        )
    frac = _semi_fraction(queries)
    at = f"@{frac * 100:g}%"
    return (
        _regime_rows(queries, claim["table"], "semi", n, frac),
        _regime_rows(queries, claim["table"], "sup", n, frac),
        "semi" + at,
        "sup" + at,
    )


def _compare_claim(claim: dict[str, Any], queries: Mapping[str, pd.DataFrame], metric: str) -> dict[str, Any]:
    row = {k: claim[k] for k in ("claim", "description", "unit", "paper")}
    row.update(
        metric=metric,
        ours=float("nan"),
        ci_low=float("nan"),
        ci_high=float("nan"),
        threshold=float("nan"),
        verdict="not run",
        n_seeds=0,
        diff_db=float("nan"),
        diff_low=float("nan"),
        diff_high=float("nan"),
    )
    n, unit, paper = claim["n_sources"], claim["unit"], claim["paper"]
    try:
        new_rows, base_rows, new_name, base_name = _claim_regimes(claim, queries)
    except _NotRun as e:
        row["sentence"] = f"Not run: {e}."
        return row
    new_cells, new_seeds, new_items = cell_means(new_rows, metric)
    base_cells, base_seeds, base_items = cell_means(base_rows, metric)
    if new_items != base_items:
        row.update(
            verdict="not run",
            sentence=f"Not comparable: {new_name} and {base_name} were scored on other test mixtures.",
        )
        return row
    row["n_seeds"] = min(len(new_seeds), len(base_seeds))
    cells = {"new": new_cells, "base": base_cells}
    w, b = float(np.nanmean(new_cells)), float(np.nanmean(base_cells))
    name = "SDR" if metric == "sdr" else "SI-SDR"
    levels = f"{new_name} {w:.2f} dB vs {base_name} {b:.2f} dB {name}, {row['n_seeds']} seed(s)"
    diff, diff_low, diff_high = bootstrap(cells, lambda r: r["new"] - r["base"])
    row.update(diff_db=diff, diff_low=diff_low, diff_high=diff_high)
    in_db = f"{diff:+.2f} dB [{diff_low:+.2f}, {diff_high:+.2f}]"
    if unit == "dB":  # the claim is the difference itself
        ours, low, high = diff, diff_low, diff_high
    elif b <= 0:
        row.update(
            verdict="not comparable",
            sentence=(
                f"Not comparable: {base_name} {name} is {b:.2f} dB (<= 0), so a relative figure is meaningless; "
                f"the difference is {in_db} ({levels}; paper {_fmt(paper, unit)})."
            ),
        )
        return row
    elif claim["kind"] == "share":
        ours, low, high = bootstrap(cells, lambda r: r["new"] / r["base"] * 100)
    else:
        ours, low, high = bootstrap(cells, lambda r: (r["new"] - r["base"]) / np.abs(r["base"]) * 100)
    threshold = {"share": 100 - 2 * (100 - paper), "sign": 0.0}.get(claim["kind"], 0.5 * paper)
    judged = verdict(low, high, threshold)
    if claim["kind"] == "share":
        what = f"{new_name} reaches {ours:.1f} % of {base_name}"
        rule = f"need >= {threshold:.1f} %: at most twice the paper's shortfall"
    elif claim["kind"] == "sign":
        what = f"{new_name} {'beats' if ours > 0 else 'trails'} {base_name} by {_fmt(abs(ours), unit).lstrip('+')}"
        rule = "need > 0 dB: the paper's sign"
    else:
        what = f"{new_name} {'beats' if ours > 0 else 'trails'} {base_name} by {_fmt(abs(ours), unit).lstrip('+')}"
        rule = f"need >= {_fmt(threshold, unit).lstrip('+')}: the paper's sign and half its effect"
    row.update(ours=ours, ci_low=low, ci_high=high, threshold=threshold, verdict=judged)
    row["sentence"] = (
        f"{judged.capitalize()}: {what} {name} at N={n}, 95 % interval "
        f"[{_fmt(low, unit)}, {_fmt(high, unit)}] (paper {_fmt(paper, unit)}; {rule}; {levels}"
        + ("" if unit == "dB" else f"; difference {in_db}")
        + ")."
    )
    return row


def compare_to_paper(queries: Mapping[str, pd.DataFrame] | str | Path) -> pd.DataFrame:
    """One row per claim of :data:`PAPER_CLAIMS` and metric (bss_eval SDR, SI-SDR): ours beside the paper's.

    Args:
        queries: per-query rows keyed by table name (``two_source``, ...), or
            the results folder holding ``queries/<table file>``. Missing tables
            give "not run" rows.

    Returns:
        Columns :data:`COMPARISON_COLUMNS`: ``ours`` is the figure from the
        means over seeds and test mixtures, ``ci_low``/``ci_high`` its 95 %
        cluster-bootstrap interval (:mod:`weaksep.evaluation.stats`), ``threshold`` the
        rule's bar and ``verdict`` one of reproduced / not reproduced /
        inconclusive / not comparable / not run (the rule is in the module docstring);
        ``diff_db``/``diff_low``/``diff_high`` the paired difference of the two
        regimes (dB) and its interval, whatever the claim's unit.
    """
    if not isinstance(queries, Mapping):
        queries = load_query_rows(queries)
    rows = [_compare_claim(c, queries, m) for c in PAPER_CLAIMS for m in CLAIM_METRICS]
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def metric_disagreements(claims: pd.DataFrame) -> list[str]:
    """A sentence for every claim whose verdict differs between bss_eval SDR and SI-SDR.

    Only judged verdicts count: a metric whose claim was not run, or whose ratio is not comparable
    (a baseline at or below 0 dB), has its own sentence, and the filter explains nothing there.
    """
    judged = {"reproduced", "not reproduced", "inconclusive"}
    out = []
    for claim, group in claims.groupby("claim", sort=False):
        v = dict(zip(group["metric"], group["verdict"]))
        if set(v.values()) <= judged and len(set(v.values())) > 1:
            said = f"{claim}: bss_eval SDR says '{v.get('sdr')}' but SI-SDR says '{v.get('si_sdr')}'; "
            if _RANK.get(v.get("sdr"), 0) > _RANK.get(v.get("si_sdr"), 0):
                why = (
                    "bss_eval's 512-tap distortion filter forgives spectral shaping (e.g. a low-passed estimate) "
                    "that SI-SDR counts as error."
                )
            else:
                why = (
                    "here SI-SDR gives the more favourable verdict, so bss_eval's filter explains nothing; a "
                    "relative figure over a baseline near 0 dB is easily large: read the dB differences."
                )
            out.append(said + why)
    return out


_RANK = {"not reproduced": 0, "inconclusive": 1, "reproduced": 2}  # how favourable a verdict is to the paper


def sdr_overview(tables: Mapping[str, pd.DataFrame] | str | Path) -> pd.DataFrame:
    """Mean SDR of every regime in every table: the absolute numbers behind the claims.

    Returns columns ``table, n_sources, regime, label_fraction, mean, ci95,
    median, n_queries, profile`` (metric ``sdr`` only), in table order.
    """
    if not isinstance(tables, Mapping):
        tables = load_tables(tables)
    parts = [tables[name] for name in TABLE_FILES if name in tables]
    parts += [df for name, df in tables.items() if name not in TABLE_FILES]
    if not parts:
        return pd.DataFrame(
            columns=["table", "n_sources", "regime", "label_fraction", "mean", "ci95", "median", "n_queries", "profile"]
        )
    df = pd.concat(parts, ignore_index=True)
    df = df[df["metric"] == "sdr"].drop(columns=["metric"])
    return df.reset_index(drop=True)


def log_minutes(run_dir: str | Path) -> float:
    """Wall time of a run's training steps and validations, in minutes: the sum of the ``seconds``
    column of ``<run_dir>/log.csv``, on the machine that trained it; NaN when the run kept no log."""
    log = Path(run_dir) / "log.csv"
    return float(pd.read_csv(log)["seconds"].sum()) / 60 if log.is_file() else float("nan")


def training_cost(results_dir: str | Path) -> pd.DataFrame:
    """What the runs of ``results_dir/runs/<run>/`` (those with a ``config.json``) cost to train, per seed.

    Returns columns ``seed, runs, minutes`` (:func:`log_minutes` summed; runs without a log count
    in ``runs`` but add nothing), one row per seed, empty when there are no runs.
    """
    rows = [
        {"seed": int(json.loads(config.read_text()).get("seed", 0)), "minutes": log_minutes(config.parent)}
        for config in Path(results_dir, "runs").glob("*/config.json")
    ]
    if not rows:
        return pd.DataFrame(columns=["seed", "runs", "minutes"])
    df = pd.DataFrame(rows)
    return df.groupby("seed").agg(runs=("minutes", "size"), minutes=("minutes", "sum")).reset_index()


def _difference_cells(claims: pd.DataFrame) -> list[str]:
    """``diff_db [diff_low, diff_high]`` of each claim row, blank where it was not run."""
    return [
        f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" if np.isfinite(d) else ""
        for d, lo, hi in zip(claims["diff_db"], claims["diff_low"], claims["diff_high"])
    ]


def _cell(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (float, np.floating)):
        return f"{x:.{digits}f}"
    return str(x).replace("|", "\\|")


def to_markdown(df: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub markdown table of ``df`` (NaN and None as blanks, booleans as yes/no)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def summary_markdown(results_dir: str | Path, ablations: Sequence[Path] | None = None) -> str:
    """The text of ``results/summary.md``: the claims with intervals and verdicts, the absolute
    figures of every regime and links to the ablation tables (by default those in ``results_dir``)."""
    results_dir = Path(results_dir)
    if ablations is None:
        ablations = sorted(results_dir.glob("07_ablations_*.csv"))
    tables = load_tables(results_dir)
    claims = compare_to_paper(results_dir)
    overview = sdr_overview(tables)
    profiles = sorted(set(overview["profile"].astype(str))) if len(overview) else []
    if len(overview):
        regime_rank = {r: i for i, r in enumerate(REGIME_ORDER)}
        table_rank = {t: i for i, t in enumerate(TABLE_FILES)}
        overview = overview.assign(
            _t=overview["table"].map(lambda t: table_rank.get(t, len(table_rank))),
            _r=overview["regime"].map(lambda r: regime_rank.get(r, len(REGIME_ORDER))),
        )
        overview = overview.sort_values(["_t", "n_sources", "_r", "label_fraction"], kind="stable")
        overview = overview.drop(columns=["_t", "_r"])
    disagree = metric_disagreements(claims)
    lines = [
        "# Our numbers beside the paper's",
        "",
        f"Profile(s): {', '.join(profiles) if profiles else 'none run'}. "
        "SDR = mean over all queries of bss_eval_sources SDR (mir_eval definition, 512-tap filter, "
        "no permutation), each source of each test mixture queried with its own entity; SI-SDR beside it. "
        "Relative gains are computed from the means as the paper states them; the last column gives the plain "
        "difference of the two regimes in dB with its interval, which a baseline near 0 dB cannot inflate.",
        "",
        "Intervals: 95 %, cluster bootstrap over seeds and test mixtures. Verdict: reproduced when the whole "
        "interval clears the bar (the paper's sign and half its effect; for the share of supervised SDR, at most "
        "twice the paper's shortfall from 100 %), not reproduced when the whole interval falls short, "
        "inconclusive otherwise.",
        "",
        to_markdown(
            claims[["claim", "metric", "unit", "paper", "ours", "ci_low", "ci_high", "verdict", "n_seeds"]].assign(
                **{"difference (dB)": _difference_cells(claims)}
            ),
            digits=1,
        ),
        *(["Where the metrics disagree:", "", *[f"- {d}" for d in disagree], ""] if disagree else []),
        "## In words",
        "",
        *[f"- {s}" for s in claims["sentence"]],
        "",
        "## SDR (dB) of every regime",
        "",
        to_markdown(overview) if len(overview) else "No result table yet.\n",
    ]
    cost = training_cost(results_dir)
    if len(cost):
        total = cost[["runs", "minutes"]].sum()
        lines += [
            "## What the runs cost",
            "",
            "Training steps and validations, summed from each run's `runs/<run>/log.csv` on the machine that "
            f"trained it (evaluation not included): {int(total['runs'])} runs, {total['minutes']:.0f} min "
            f"({total['minutes'] / 60:.1f} h) in all.",
            "",
            to_markdown(cost, digits=0),
        ]
    if ablations:
        lines += ["## Ablations (notebook 07)", ""]
        lines += [f"- [{p.stem}]({p.name}), figure [figures/{p.stem}.png](figures/{p.stem}.png)" for p in ablations]
        lines.append("")
    return "\n".join(lines)
