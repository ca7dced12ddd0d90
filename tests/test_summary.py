"""weaksep.reproduce.summary (our numbers beside the paper's) and weaksep.reproduce.plots (figures from CSVs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from weaksep.cli import main
from weaksep.reproduce import plots, summary
from weaksep.reproduce.tables import TABLE_COLUMNS, save_table, summarise_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _table(name: str, n: int, sdr: dict[tuple[str, float], tuple[float, float]]) -> pd.DataFrame:
    """A result table with the given (regime, label_fraction) -> (mean SDR, ci95), plus an si_sdr row each."""
    rows = []
    for (regime, lf), (mean, ci) in sdr.items():
        for metric, shift in (("sdr", 0.0), ("si_sdr", -1.0)):
            rows.append(
                dict(
                    table=name,
                    n_sources=n,
                    regime=regime,
                    label_fraction=lf,
                    metric=metric,
                    mean=mean + shift,
                    ci95=ci,
                    median=mean + shift,
                    n_queries=20,
                    profile="smoke",
                )
            )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


NAN = float("nan")


def _tables() -> dict[str, pd.DataFrame]:
    return {
        # unsup 5 dB, weak 8 dB -> +60 % (paper 71 %: reproduced, >= 35.5 %); weak/sup = 8/8.2 = 97.6 %
        "two_source": _table(
            "two_source",
            2,
            {
                ("mixture", NAN): (0.0, 0.1),
                ("unsup", NAN): (5.0, 0.5),
                ("weak", NAN): (8.0, 0.4),
                ("sup", 1.0): (8.2, 0.3),
            },
        ),
        # 4 -> 5 dB: +25 % (paper 102 %: not reproduced)
        "three_source": _table(
            "three_source", 3, {("unsup", NAN): (4.0, 0.5), ("weak", NAN): (5.0, 0.5), ("sup", 1.0): (7.0, 0.5)}
        ),
        # unsup below 0 dB: a relative gain is meaningless
        "four_source": _table(
            "four_source", 4, {("unsup", NAN): (-1.0, 0.5), ("weak", NAN): (2.0, 0.5), ("sup", 1.0): (4.0, 0.5)}
        ),
        # sup@5% 4 dB, semi@5% 5 dB: +1 dB (paper 6.2: not reproduced), +25 % (paper 17 %: reproduced)
        "semi_supervised": _table(
            "semi_supervised", 2, {("sup", 0.05): (4.0, 0.6), ("semi", 0.05): (5.0, 0.8), ("sup", 0.25): (6.0, 0.6)}
        ),
    }


def test_paper_claims_are_the_papers() -> None:
    claims = {c["claim"]: c for c in summary.PAPER_CLAIMS}
    assert [claims[f"weak_vs_unsup_n{n}"]["paper"] for n in (2, 3, 4)] == [71.0, 102.0, 129.0]
    assert claims["weak_share_of_sup_n2"]["paper"] == 97.5
    assert claims["semi_vs_sup5_n2_db"]["paper"] == 6.2 and claims["semi_vs_sup5_n2_db"]["unit"] == "dB"
    assert claims["semi_vs_sup5_n2_pct"]["paper"] == 17.0
    assert all({"claim", "description", "paper", "unit"} <= set(c) for c in summary.PAPER_CLAIMS)


def _claim_rows(n: int, levels: dict[tuple[str, float], float], seeds=(0, 1, 2), items=30, noise=0.0) -> pd.DataFrame:
    """Per-query rows with the given mean level per (regime, label_fraction), over seeds and items."""
    rng = np.random.default_rng(0)
    rows = []
    for (regime, lf), level in levels.items():
        for seed in seeds:
            for item in range(items):
                wobble = noise * rng.normal()
                for q in range(n):
                    # item effects cancel in the mean: +-0.5 dB alternating
                    v = level + (0.5 if item % 2 else -0.5) + wobble
                    rows.append(
                        dict(
                            regime=regime,
                            n_sources=n,
                            label_fraction=lf,
                            item=item,
                            query=q,
                            seed=seed,
                            sdr=v,
                            si_sdr=v - 1.0,
                        )
                    )
    return pd.DataFrame(rows)


def _queries() -> dict[str, pd.DataFrame]:
    return {
        # unsup 5 dB, weak 8 dB -> +60 % (paper 71 %: needs >= 35.5 %); weak/sup = 8/8.2 = 97.6 %
        "two_source": _claim_rows(
            2, {("mixture", NAN): 0.0, ("unsup", NAN): 5.0, ("weak", NAN): 8.0, ("sup", 1.0): 8.2}
        ),
        # 4 -> 5 dB: +25 % (paper 102 %: the bar is 51 %)
        "three_source": _claim_rows(3, {("unsup", NAN): 4.0, ("weak", NAN): 5.0, ("sup", 1.0): 7.0}),
        # unsup below 0 dB: a relative gain is meaningless
        "four_source": _claim_rows(4, {("unsup", NAN): -1.0, ("weak", NAN): 2.0, ("sup", 1.0): 4.0}),
        # sup@5% 4 dB, semi@5% 5 dB: +1 dB (paper 6.2: bar 3.1), +25 % (paper 17 %: bar 8.5 %)
        "semi_supervised": _claim_rows(2, {("sup", 0.05): 4.0, ("semi", 0.05): 5.0, ("sup", 0.25): 6.0}),
    }


def test_compare_to_paper_known_numbers() -> None:
    out = summary.compare_to_paper(_queries())
    assert list(out.columns) == summary.COMPARISON_COLUMNS and len(out) == 2 * len(summary.PAPER_CLAIMS)
    sdr = out[out["metric"] == "sdr"].set_index("claim")

    r = sdr.loc["weak_vs_unsup_n2"]
    assert r["ours"] == pytest.approx(60.0) and r["verdict"] == "reproduced" and r["n_seeds"] == 3
    assert r["ci_low"] <= 60.0 <= r["ci_high"] and r["threshold"] == pytest.approx(35.5)
    assert r["sentence"].startswith("Reproduced: weak beats unsup by 60.0 %") and "paper 71.0 %" in r["sentence"]
    assert sdr.loc["weak_vs_unsup_n3", "ours"] == pytest.approx(25.0)
    assert sdr.loc["weak_vs_unsup_n3", "verdict"] == "not reproduced"
    # every claim also gives the plain dB difference, with an interval around it, in its row and sentence
    r = sdr.loc["weak_vs_unsup_n3"]
    assert r["diff_db"] == pytest.approx(1.0) and r["diff_low"] <= 1.0 <= r["diff_high"]
    assert "difference +1.00 dB [" in r["sentence"]
    assert sdr.loc["weak_vs_unsup_n4", "diff_db"] == pytest.approx(3.0)
    assert sdr.loc["weak_share_of_sup_n2", "diff_db"] == pytest.approx(8.0 - 8.2)
    r = sdr.loc["weak_vs_unsup_n4"]
    assert np.isnan(r["ours"]) and r["verdict"] == "not comparable" and "+3.00 dB" in r["sentence"]
    assert sdr.loc["weak_share_of_sup_n2", "ours"] == pytest.approx(8 / 8.2 * 100)
    # semi vs sup on the *same* 5 %, not on the 25 % rows
    assert sdr.loc["semi_vs_sup5_n2_db", "ours"] == pytest.approx(1.0)
    assert sdr.loc["semi_vs_sup5_n2_db", "verdict"] == "not reproduced"
    assert sdr.loc["semi_vs_sup5_n2_pct", "ours"] == pytest.approx(25.0)
    # SI-SDR is 1 dB lower everywhere: weak/unsup = 7/4 - 1 = +75 %
    si = out[out["metric"] == "si_sdr"].set_index("claim")
    assert si.loc["weak_vs_unsup_n2", "ours"] == pytest.approx(75.0)


def test_an_interval_across_the_bar_is_inconclusive() -> None:
    """Seed-to-seed noise widens the interval; a figure near the bar is then neither yes nor no."""
    queries = _queries()
    queries["three_source"] = _claim_rows(3, {("unsup", NAN): 4.0, ("weak", NAN): 6.0}, noise=3.0, items=10)
    r = summary.compare_to_paper(queries).set_index(["claim", "metric"]).loc[("weak_vs_unsup_n3", "sdr")]
    assert r["ci_low"] < 51.0 < r["ci_high"] and r["verdict"] == "inconclusive"


def test_metric_disagreement_is_said() -> None:
    claims = pd.DataFrame(
        {
            "claim": ["a", "a", "b", "b", "c", "c"],
            "metric": ["sdr", "si_sdr"] * 3,
            # c: SI-SDR's ratio is meaningless (baseline <= 0 dB), which is not a disagreement
            "verdict": ["reproduced", "not reproduced", "inconclusive", "inconclusive", "reproduced", "not comparable"],
        }
    )
    said = summary.metric_disagreements(claims)
    assert len(said) == 1 and said[0].startswith("a: bss_eval SDR says 'reproduced' but SI-SDR says 'not reproduced'")


def test_share_rule_and_negative_gain() -> None:
    queries = _queries()
    queries["two_source"] = _claim_rows(2, {("unsup", NAN): 9.0, ("weak", NAN): 8.0, ("sup", 1.0): 10.0})
    out = summary.compare_to_paper(queries)
    out = out[out["metric"] == "sdr"].set_index("claim")
    assert out.loc["weak_share_of_sup_n2", "ours"] == pytest.approx(80.0)
    assert out.loc["weak_share_of_sup_n2", "verdict"] == "not reproduced"
    assert out.loc["weak_vs_unsup_n2", "ours"] == pytest.approx(-100 / 9)
    assert "weak trails unsup" in out.loc["weak_vs_unsup_n2", "sentence"]


def test_missing_tables_say_not_run(tmp_path) -> None:
    queries = _queries()
    del queries["three_source"], queries["semi_supervised"]
    out = summary.compare_to_paper(queries)
    out = out[out["metric"] == "sdr"].set_index("claim")
    for claim in ("weak_vs_unsup_n3", "semi_vs_sup5_n2_db", "semi_vs_sup5_n2_pct"):
        assert out.loc[claim, "sentence"].startswith("Not run:") and out.loc[claim, "verdict"] == "not run"
    assert "02_three_source.csv is missing" in out.loc["weak_vs_unsup_n3", "sentence"]
    queries["two_source"] = queries["two_source"][queries["two_source"]["regime"] != "weak"]
    out = summary.compare_to_paper(queries).set_index(["claim", "metric"])
    assert "no 'weak' rows for N=2" in out.loc[("weak_vs_unsup_n2", "sdr"), "sentence"]
    assert summary.compare_to_paper(tmp_path)["sentence"].str.startswith("Not run:").all()


def test_compare_from_results_dir_matches_dict(tmp_path) -> None:
    (tmp_path / "queries").mkdir()
    for name, df in _queries().items():
        df.to_csv(tmp_path / "queries" / summary.TABLE_FILES[name], index=False)
    pd.testing.assert_frame_equal(summary.compare_to_paper(tmp_path), summary.compare_to_paper(_queries()))


def _query_rows(n: int, regimes: dict[tuple[str, float], float], rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for (regime, lf), level in regimes.items():
        for item in range(6):
            for q in range(n):
                r = dict(regime=regime, n_sources=n, label_fraction=lf, item=item, entity=f"e{q}")
                r.update({m: level + rng.normal(0, 0.5) for m in ("sdr", "sir", "sar", "sdri", "si_sdr")})
                rows.append(r)
    return pd.DataFrame(rows)


def _write_results(root, rng) -> None:
    for n, name in ((2, "two_source"), (3, "three_source"), (4, "four_source")):
        q = _query_rows(n, {("mixture", NAN): 0.0, ("unsup", NAN): 3.0, ("weak", NAN): 5.0, ("sup", 1.0): 6.0}, rng)
        save_table(summarise_table(q, name, "smoke"), root / summary.TABLE_FILES[name])
        (root / "queries").mkdir(exist_ok=True)
        q.to_csv(root / "queries" / summary.TABLE_FILES[name], index=False)
    q = _query_rows(2, {("sup", 0.05): 2.0, ("semi", 0.05): 4.0}, rng)
    save_table(summarise_table(q, "semi_supervised", "smoke"), root / summary.TABLE_FILES["semi_supervised"])
    q.to_csv(root / "queries" / summary.TABLE_FILES["semi_supervised"], index=False)
    for run in ("weak_n2", "sup_n2"):
        steps = np.arange(0, 200, 10)
        log = pd.DataFrame({"step": steps, "loss_total": 5 * np.exp(-steps / 80) + 0.1, "lr": 1e-3})
        if run.startswith("weak"):
            log["loss_contrastive"] = np.log(2) * np.exp(-steps / 150)
            log["loss_consistency"] = 0.5 * np.exp(-steps / 60)
        else:
            log["loss_sup"] = np.exp(-steps / 50)
        (root / "runs" / run).mkdir(parents=True)
        log.to_csv(root / "runs" / run / "log.csv", index=False)


def test_redraw_all_writes_figures_and_summary(tmp_path, capsys) -> None:
    _write_results(tmp_path, np.random.default_rng(0))
    out = plots.redraw_all(tmp_path)
    names = sorted(p.name for p in out["figures"])
    assert names == ["sdr_by_regime.png", "semi_supervised_sdr.png", "si_sdr_by_regime.png", "training_curves.png"]
    for p in out["figures"]:
        assert p.parent == tmp_path / "figures" and p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 5000

    md = (tmp_path / "summary.md").read_text()
    assert "| weak_vs_unsup_n2 |" in md and "## SDR (dB) of every regime" in md
    csv = pd.read_csv(tmp_path / "summary.csv")
    assert list(csv.columns) == summary.COMPARISON_COLUMNS and len(csv) == 2 * len(summary.PAPER_CLAIMS)
    assert {"ci_low", "ci_high", "verdict"} <= set(csv.columns)
    # weak ~5 dB vs unsup ~3 dB -> ~ +67 %, reproduced; semi 4 vs sup@5% 2 -> ~ +2 dB < 3.1 dB, not reproduced
    claims = out["claims"].query("metric == 'sdr'").set_index("claim")
    assert claims.loc["weak_vs_unsup_n2", "ours"] == pytest.approx(200 / 3, abs=15)
    assert claims.loc["weak_vs_unsup_n2", "verdict"] == "reproduced"
    assert claims.loc["semi_vs_sup5_n2_db", "ours"] == pytest.approx(2.0, abs=0.5)
    assert claims.loc["semi_vs_sup5_n2_db", "verdict"] == "not reproduced"
    assert not list(tmp_path.glob("**/*.tmp"))  # atomic writes leave no temporaries

    assert main(["figures", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "weak_vs_unsup_n4" in printed and "summary.md" in printed


def test_redraw_all_with_nothing_run(tmp_path) -> None:
    out = plots.redraw_all(tmp_path)
    assert out["figures"] == []
    assert "Not run" in (tmp_path / "summary.md").read_text()


def test_plot_spectrograms_and_errors(tmp_path) -> None:
    sr, t = 8000, 8000
    time = torch.arange(t) / sr
    refs = {"violin": torch.sin(2 * torch.pi * 440 * time), "flute": 0.5 * torch.sin(2 * torch.pi * 1200 * time)}
    mix = refs["violin"] + refs["flute"]
    ests = {f"{m}: {k}": v * g for m, g in (("weak", 0.9), ("unsup", 0.7)) for k, v in refs.items()}
    p = plots.plot_spectrograms(mix, ests, refs, sr, 256, 64, tmp_path / "spec.png")
    assert p.read_bytes()[:8] == PNG_MAGIC
    p = plots.plot_spectrograms(mix.numpy(), ests, None, sr, 256, 64, tmp_path / "spec_noref.png")
    assert p.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="mono waveform"):
        plots.plot_spectrograms(torch.zeros(2, t), ests, None, sr, 256, 64, tmp_path / "x.png")

    (tmp_path / "log.csv").write_text("iteration,loss_total\n0,1.0\n")
    with pytest.raises(ValueError, match="no 'step' column"):
        plots.plot_training_curves({"run": tmp_path / "log.csv"}, tmp_path / "c.png")
    with pytest.raises(ValueError, match="no finite 'sar' rows"):
        plots.plot_sdr_by_regime(_tables()["two_source"], tmp_path / "b.png", metric="sar")
    assert plots.regime_label("sup", 0.05) == "sup@5%" and plots.regime_label("sup", 1.0) == "sup"


def test_bars_say_how_many_seeds_each_n_rests_on() -> None:
    """A study under way mixes three-seed and one-seed tables in one figure: each N's tick says which."""
    rows = pd.DataFrame({"n_sources": [2, 2, 3, 3], "n_seeds": [3, 3, 1, 3]})
    assert plots._seeds_note(rows[rows["n_sources"] == 2]) == "\n3 seeds"
    assert plots._seeds_note(rows[rows["n_sources"] == 3]) == "\n1-3 seeds"
    assert plots._seeds_note(pd.DataFrame({"n_seeds": [1]})) == "\n1 seed"
    assert plots._seeds_note(pd.DataFrame({"n_sources": [2]})) == ""  # tables written before n_seeds


def test_training_cost_sums_each_seeds_logs_and_the_summary_says_it(tmp_path) -> None:
    """Minutes per seed from runs/<run>/log.csv; a folder without config.json (a grid of runs) is not a run."""
    import json

    for run, seed, seconds in (("weak_n2", 0, [60.0, 120.0]), ("sup_n2", 0, [30.0]), ("weak_n2_s1", 1, [90.0, 90.0])):
        (tmp_path / "runs" / run).mkdir(parents=True)
        (tmp_path / "runs" / run / "config.json").write_text(json.dumps({"seed": seed}))
        pd.DataFrame({"step": range(len(seconds)), "seconds": seconds}).to_csv(tmp_path / "runs" / run / "log.csv")
    (tmp_path / "runs" / "unsup_n2_s1").mkdir()  # trained before logs kept time: counted, adds nothing
    (tmp_path / "runs" / "unsup_n2_s1" / "config.json").write_text(json.dumps({"seed": 1}))
    (tmp_path / "runs" / "lr_grid" / "weak_n2_lr3e-3").mkdir(parents=True)

    cost = summary.training_cost(tmp_path).set_index("seed")
    assert cost["runs"].to_dict() == {0: 2, 1: 2}
    assert cost["minutes"].to_dict() == pytest.approx({0: 3.5, 1: 3.0})
    assert np.isnan(summary.log_minutes(tmp_path / "runs" / "unsup_n2_s1"))
    md = summary.summary_markdown(tmp_path)
    assert "## What the runs cost" in md and "4 runs, 6 min (0.1 h) in all" in md
    assert summary.training_cost(tmp_path / "nothing").empty
