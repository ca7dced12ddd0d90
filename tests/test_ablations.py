"""The ablation machinery: run identities, training on from a shorter run, the mixture-text option,
CLAP recognition of estimates, and the ablation tables with their paired differences."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from weaksep.data import MixtureSampler
from weaksep.evaluation.scores import clap_scores
from weaksep.method.objective import _entity_means, weak_terms
from weaksep.reproduce.ablations import (
    ABLATION_COLUMNS,
    add_verdicts,
    load_ablation,
    paired_difference,
    save_ablation,
    sdr_view,
    summarise_ablation,
    verdict,
)
from weaksep.runs import RunConfig, same_run
from weaksep.training.checkpoint import read_checkpoint


# --------------------------------------------------------------------------- run identity
def test_a_field_added_later_keeps_old_runs_identity(smoke_study):
    cfg = smoke_study.run_config("unsup", 2)
    old = {k: v for k, v in cfg.to_dict().items() if k != "mixture_text"}  # a config saved before the field existed
    assert same_run(old, cfg)
    other = smoke_study.run_config("unsup", 2, mixture_text="entity_mean")
    assert not same_run(old, other) and other.identity()["mixture_text"] == "entity_mean"
    assert smoke_study.run_dir(cfg) != smoke_study.run_dir(other)
    assert same_run(smoke_study.run_config("unsup", 2, steps=7).to_dict(), cfg, ignore=("steps",))
    with pytest.raises(ValueError, match="mixture_text"):
        RunConfig("unsup", 2, {}, mixture_text="caption")


def _weights(path):
    return read_checkpoint(path)["model"]


@pytest.mark.slow  # trains three short runs: about 30 s on 2 cores
def test_a_longer_run_trains_on_from_the_shorter_one_to_the_same_weights(smoke_study, tmp_path):
    from weaksep.reproduce.study import Study

    study = Study(
        smoke_study.profile,
        data_root=tmp_path / "cache",
        results_dir=tmp_path / "results",
        clap_checkpoint=smoke_study.clap_checkpoint,
        progress=False,
    )
    # The reference: 8 steps from scratch in a folder of its own (no shorter run to start from).
    # Without validation every call returns its last weights (model.pt), the ones compared here.
    scratch = _weights(study.train("weak", 2, steps=8, out_dir=tmp_path / "scratch", validate=False))
    short = study.train("weak", 2, steps=4, validate=False)
    longer = study.train("weak", 2, steps=8, snapshots=True, validate=False)
    assert longer.parent != short.parent
    log = pd.read_csv(longer.parent / "log.csv")
    assert log["step"].tolist() == list(range(8))  # the first 4 rows come from the shorter run
    assert all(torch.equal(scratch[k], v) for k, v in _weights(longer).items())
    snaps = study.snapshots(longer)
    assert list(snaps) == [4, 8]  # checkpoint_every is 10 at smoke: the shorter run's end and the final model
    assert all(torch.equal(_weights(short)[k], v) for k, v in _weights(snaps[4]).items())
    assert json.loads((longer.parent / "config.json").read_text())["steps"] == 8


def test_snapshots_are_kept_at_every_checkpoint(smoke_study, tmp_path):
    path = smoke_study.train("unsup", 2, steps=20, out_dir=tmp_path / "r", snapshots=True)
    snaps = smoke_study.snapshots(path)
    assert list(snaps) == [10, 20]
    assert read_checkpoint(snaps[10])["step"] == 10


# --------------------------------------------------------------------------- mixture text
def test_entity_mean_replaces_the_caption_query(smoke_study):
    clap = smoke_study.clap()
    sampler = MixtureSampler(smoke_study.clips("train"), 2, 3, with_sources=False, seed=0)
    batch = sampler.sample(torch.Generator().manual_seed(0))
    means = _entity_means(clap, batch)
    assert means.shape == (3, 2, clap.embed_dim)
    ents = batch.entities[1][0]
    expected = torch.nn.functional.normalize(clap.embed_text(list(ents)).mean(0), dim=-1)
    assert torch.allclose(means[1, 0], expected, atol=1e-6)
    assert torch.allclose(means.norm(dim=-1), torch.ones(3, 2), atol=1e-5)
    # The caption sentence is another vector: the option changes what the model is asked.
    assert not torch.allclose(clap.embed_text([batch.texts[1][0]])[0], expected, atol=1e-3)

    from weaksep.training.train import build_separator

    torch.manual_seed(0)
    cfg = smoke_study.run_config("unsup", 2)
    model = build_separator(cfg, smoke_study.profile, clap, smoke_study.clips("train"))
    sentence = weak_terms(model, clap, batch, cfg, smoke_study.profile.sample_rate)
    mean = weak_terms(
        model,
        clap,
        batch,
        smoke_study.run_config("unsup", 2, mixture_text="entity_mean"),
        smoke_study.profile.sample_rate,
    )
    assert float(sentence["loss_unsup"]) != float(mean["loss_unsup"])


# --------------------------------------------------------------------------- CLAP recognition
def test_clap_scores_name_the_top_class(smoke_study):
    clap = smoke_study.clap()
    test = smoke_study.clips("test")
    classes = sorted(set(test.labels))
    wav, labels = test.audio[:12], list(test.labels[:12])
    sim, top1 = clap_scores(clap, wav, labels, classes, smoke_study.profile.sample_rate)
    audio = clap.embed_audio(wav, smoke_study.profile.sample_rate)
    best = (audio @ clap.embed_text(classes).T).argmax(-1)
    assert top1.tolist() == [classes[int(i)] == e for i, e in zip(best, labels)]
    assert np.allclose(sim, (audio * clap.embed_text(labels)).sum(-1).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="not among the classes"):
        clap_scores(clap, wav[:1], ["theremin"], classes, smoke_study.profile.sample_rate)


@pytest.mark.slow  # trains and evaluates: about 20 s on 2 cores
def test_evaluate_with_clean_scores_the_clap_on_clean_sources(smoke_study, tmp_path):
    path = smoke_study.train("unsup", 2, steps=2, out_dir=tmp_path / "u")
    rows = smoke_study.evaluate({"unsup": path}, 2, "test", with_clean=True)
    clean = rows[rows["run"] == "clean"]
    n_queries = sum(len(ls) for ls in smoke_study.testset(2).labels)
    assert len(clean) == n_queries and clean["sdr"].isna().all()
    assert set(clean["clap_top1"].unique()) <= {0.0, 1.0} and clean["regime"].eq("clean").all()
    assert rows.loc[rows["run"] == "unsup", "sdr"].notna().all()


# --------------------------------------------------------------------------- tables
def _rows(rng, settings, n=2, items=30, shift=None):
    shift = shift or {}
    base = rng.normal(5, 3, size=(items, n))  # the query-to-query spread the pairing removes
    out = []
    for s in settings:
        for k in range(items):
            for q in range(n):
                sdr = base[k, q] + shift.get(s, 0.0) + rng.normal(0, 0.1)
                out.append(
                    {
                        "setting": s,
                        "run": s,
                        "regime": "weak" if s != "unsup" else "unsup",
                        "label_fraction": 0.0,
                        "n_sources": n,
                        "item": k,
                        "query": q,
                        "sdr": sdr,
                        "sir": sdr,
                        "sar": sdr,
                        "sdri": sdr,
                        "si_sdr": sdr,
                        "clap_top1": float(q == 0),
                    }
                )
    return pd.DataFrame(out)


def test_paired_difference_is_the_mean_of_per_query_differences():
    rng = np.random.default_rng(0)
    rows = _rows(rng, ["unsup", "a"], shift={"a": 0.5})
    got = paired_difference(rows, "a", "unsup")
    a = rows[rows.setting == "a"].sort_values(["item", "query"])["sdr"].to_numpy()
    u = rows[rows.setting == "unsup"].sort_values(["item", "query"])["sdr"].to_numpy()
    assert got["paired_diff"].iloc[0] == pytest.approx((a - u).mean())
    assert got["paired_n"].iloc[0] == 60
    # Pairing removes the spread between queries: the paired interval is far narrower than the settings' own.
    low, high = got["paired_ci_low"].iloc[0], got["paired_ci_high"].iloc[0]
    assert low < got["paired_diff"].iloc[0] < high and high - low < 0.2 < 1.0 < a.std()


def test_the_paired_interval_resamples_mixtures_not_queries():
    """Queries of one mixture that move together make a wide interval; a naive t-interval over queries
    would call the same gain certain."""
    rng = np.random.default_rng(3)
    rows = _rows(rng, ["unsup", "a"], shift={"a": 0.0})
    per_item = dict(zip(sorted(rows["item"].unique()), rng.normal(0.3, 2.0, rows["item"].nunique())))
    on_a = rows["setting"] == "a"
    rows.loc[on_a, "sdr"] = rows.loc[on_a, "item"].map(per_item) + rows.loc[on_a, "sdr"]
    got = paired_difference(rows, "a", "unsup").iloc[0]
    assert got["paired_ci_high"] - got["paired_ci_low"] > 2 * got["paired_ci95"]


def test_summarise_ablation_with_one_reference_or_pairs(tmp_path):
    rng = np.random.default_rng(1)
    rows = _rows(rng, ["unsup", "small", "big"], shift={"small": 0.02, "big": 1.0})
    table = summarise_ablation(rows, "loss", "smoke", reference="unsup", values={"small": 0.1, "big": 2.0})
    assert list(table.columns) == list(ABLATION_COLUMNS)
    view = add_verdicts(sdr_view(table)).set_index("setting")
    assert view.loc["big", "vs_reference"] == "better" and view.loc["small", "vs_reference"] == "overlaps"
    assert view.loc["unsup", "vs_reference"] == "" and np.isnan(view.loc["unsup", "value"])
    assert view.loc["big", "value"] == 2.0
    top1 = table[table.metric == "clap_top1"].set_index("setting")["mean"]
    assert top1.tolist() == pytest.approx([0.5, 0.5, 0.5])
    save_ablation(table, tmp_path / "07_ablations_loss.csv")
    back = load_ablation(tmp_path / "07_ablations_loss.csv")
    assert back["paired_vs"].tolist() == table["paired_vs"].tolist()
    paired = summarise_ablation(rows, "fraction", "smoke", reference={"big": "small"})
    assert set(paired.loc[paired["paired_vs"] != "", "setting"]) == {"big"}
    with pytest.raises(ValueError, match="have no rows"):
        summarise_ablation(rows, "loss", "smoke", reference="absent")


def test_verdict_words():
    assert verdict(1.0, 0.5, 1.5) == "better" and verdict(-1.0, -1.5, -0.5) == "worse"
    assert verdict(0.2, -0.3, 0.7) == "overlaps" and verdict(float("nan"), 0.1, 0.2) == "n/a"
    assert verdict(0.2, float("nan"), float("nan")) == "overlaps"


def test_ablation_figures_and_summary_links(tmp_path):
    from weaksep.reproduce.plots import plot_ablation, redraw_all
    from weaksep.reproduce.summary import summary_markdown

    rng = np.random.default_rng(2)
    rows = _rows(rng, ["unsup", "w=0.1", "w=1"], n=3)
    for section, values in (("loss", None), ("weight", {"w=0.1": 0.1, "w=1": 1.0})):
        save_ablation(
            summarise_ablation(rows, section, "smoke", "unsup", values), tmp_path / f"07_ablations_{section}.csv"
        )
    pngs = plot_ablation(tmp_path / "07_ablations_weight.csv", tmp_path / "figures")
    assert [p.name for p in pngs] == [
        "07_ablations_weight.png",
        "07_ablations_weight_paired.png",
        "07_ablations_weight_clap_top1.png",
    ]
    assert all(p.stat().st_size > 1000 for p in pngs)
    out = redraw_all(tmp_path)
    assert (tmp_path / "figures" / "07_ablations_loss.png") in out["figures"]
    md = summary_markdown(tmp_path)
    assert "[07_ablations_loss](07_ablations_loss.csv)" in md and "07_ablations_weight" in md


def test_command_line_ablation_switches(smoke_study, tmp_path):
    from weaksep.cli import main

    out = tmp_path / "run"
    args = ["train", "--regime", "weak", "--profile", "smoke", "--out", str(out), "--steps", "2", "--no-progress"]
    args += ["--data-root", str(smoke_study.cache), "--clap-checkpoint", str(smoke_study.clap_checkpoint)]
    assert main([*args, "--no-validate", "--no-contrastive", "--mixture-text", "entity_mean"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["contrastive"], cfg["consistency"], cfg["mixture_text"], cfg["steps"]) == (
        False,
        True,
        "entity_mean",
        2,
    )
    assert "loss_contrastive" not in pd.read_csv(out / "log.csv").dropna(axis=1, how="all").columns


# --------------------------------------------------------------------------- plans
def test_every_profile_has_an_ablation_plan_and_overrides_are_checked():
    from weaksep.profiles import ABLATION_PLANS, PROFILES, AblationPlan, get_ablation_plan

    assert set(ABLATION_PLANS) == set(PROFILES)
    assert all(plan.name == name for name, plan in ABLATION_PLANS.items())
    plan = get_ablation_plan("smoke", weights=[0.0, 1.0], fraction_seeds=[0, 1])
    assert plan.weights == (0.0, 1.0) and plan.fraction_seeds == (0, 1)  # papermill's lists become tuples
    assert get_ablation_plan("smoke") is ABLATION_PLANS["smoke"]
    assert json.loads(json.dumps(plan.to_dict()))["weights"] == [0.0, 1.0]
    with pytest.raises(ValueError, match="unknown ablation-plan setting"):
        get_ablation_plan("smoke", weight=[1.0])
    with pytest.raises(ValueError, match="no ablation plan"):
        get_ablation_plan("huge")
    with pytest.raises(ValueError, match="fractions"):
        AblationPlan("x", fractions=(0.0, 0.5))
    with pytest.raises(ValueError, match="weaker_clap_share"):
        AblationPlan("x", weaker_clap_share=1.0)


def test_the_quick_plan_is_the_one_the_committed_tables_were_made_with():
    from pathlib import Path

    from weaksep.profiles import get_ablation_plan

    configs = Path(__file__).resolve().parent.parent / "results" / "configs"
    plan = get_ablation_plan("quick")
    cfg = {
        s: json.loads((configs / f"07_ablations_{s}.json").read_text())
        for s in ("weight", "fraction", "loss", "length")
    }
    assert cfg["weight"]["weights"] == list(plan.weights) and cfg["weight"]["sources"] == plan.weight_sources
    assert cfg["fraction"]["fractions"] == list(plan.fractions) and cfg["fraction"]["seeds"] == list(
        plan.fraction_seeds
    )
    assert cfg["loss"]["sources"] == list(plan.loss_sources)
    assert cfg["length"]["steps"] == cfg["length"]["profile"]["steps"] * plan.length_factor


# --------------------------------------------------------------------------- settings, choices, coverage
def _val_rows(means: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"setting": s, "sdr": v} for s, vs in means.items() for v in vs])


def test_the_weight_is_chosen_on_the_best_mean_validation_sdr():
    from weaksep.reproduce.ablations import choose_on_validation, weight_setting

    assert [weight_setting(w) for w in (0.0, 0.125, 0.5, 2.0)] == ["w=0", "w=0.125", "w=0.5", "w=2"]
    rows = _val_rows({"unsup": [9.0, 9.0], "w=0": [0.0, 1.0], "w=0.5": [3.0, 2.0], "w=2": [4.0, 0.0]})
    chosen, means = choose_on_validation(rows, {"w=0": 0.0, "w=0.5": 0.5, "w=2": 2.0})
    assert chosen == 0.5 and means == {0.0: 0.5, 0.5: 2.5, 2.0: 2.0}  # unsup is not a candidate
    tie = _val_rows({"w=0.5": [1.0], "w=2": [1.0]})
    assert choose_on_validation(tie, {"w=2": 2.0, "w=0.5": 0.5})[0] == 2.0  # a tie goes to the first candidate
    nan = _val_rows({"w=0.5": [1.0, float("nan")], "w=2": [0.5]})
    assert choose_on_validation(nan, {"w=0.5": 0.5, "w=2": 2.0}) == (
        0.5,
        {0.5: 1.0, 2.0: 0.5},
    )  # a silent query is left out
    with pytest.raises(ValueError, match=r"\['w=1'\] have no finite sdr"):
        choose_on_validation(tie, {"w=0.5": 0.5, "w=1": 1.0})


def test_a_chosen_weight_other_than_the_default_is_also_tested_at_two_sources():
    from weaksep.reproduce.ablations import weight_test_sources

    assert weight_test_sources(3, 0.5, 0.5) == [3]
    assert weight_test_sources(3, 2.0, 0.5) == [2, 3]
    assert weight_test_sources(2, 2.0, 0.5) == [2]


def test_fraction_settings_and_their_class_coverage():
    from weaksep.data import labelled_subset
    from weaksep.reproduce.ablations import (
        covers_a_mixture_of_mixtures,
        fraction_setting,
        labelled_classes,
        plan_fractions,
    )

    assert fraction_setting("sup", 0.05, 0, False) == "sup@5%"
    assert fraction_setting("semi", 0.01, 2, True) == "semi@1% s2"
    assert fraction_setting("sup", 1.0, 0, False) == "sup@100%"
    labels = [c for c in "abcdef" for _ in range(10)]  # 6 classes x 10 clips
    assert labelled_classes(labels, 1.0, 0) == set("abcdef")
    picked = labelled_subset(len(labels), 0.05, 3)
    assert len(picked) == 3 and labelled_classes(labels, 0.05, 3) == {labels[i] for i in picked}
    assert covers_a_mixture_of_mixtures(set("abcd"), 2) and not covers_a_mixture_of_mixtures(set("abc"), 2)

    runs, notes = plan_fractions(labels, [0.02, 0.5, 1.0], [0], 2)
    # 2 % of 60 clips is one clip, one class: no mixture of mixtures (4 classes at N = 2) can be drawn.
    assert len(notes) == 1 and notes[0].startswith("fraction 0.02 (seed 0): the labelled clips cover 1 classes")
    assert [(r.fraction, r.sup, r.semi) for r in runs] == [(0.5, "sup@50%", "semi@50%"), (1.0, "sup@100%", None)]
    runs, notes = plan_fractions(labels, [0.5], [0, 1], 3)
    assert [(r.seed, r.sup, r.semi) for r in runs if r.fraction == 0.5] == [
        (0, "sup@50% s0", "semi@50% s0"),
        (1, "sup@50% s1", "semi@50% s1"),
    ]
    assert not notes


def test_clap_variants_and_their_rows():
    from weaksep.reproduce.ablations import clap_variant_rows, clap_variant_steps

    assert clap_variant_steps(1000, 0.1) == {"CLAP 1000 steps": 1000, "CLAP 100 steps": 100, "CLAP untrained": 0}
    with pytest.raises(ValueError, match="weaker CLAP"):
        clap_variant_steps(5, 0.1)  # 0 steps would be the untrained tower twice
    rows = pd.DataFrame({"run": ["weak · X", "mixture", "clean", "weak · X"], "sdr": [1.0, 0.0, np.nan, 2.0]})
    out = clap_variant_rows(rows, "X")
    assert out["run"].tolist() == ["weak · X", "clean · X", "weak · X"]
    assert rows["run"].tolist()[2] == "clean"  # the caller's rows are not changed


def test_training_length_settings_pair_weak_with_unsup_at_the_same_step():
    from weaksep.reproduce.ablations import by_run, snapshot_settings

    runs, values, pairs = snapshot_settings({"unsup": {10: "u10", 20: "u20"}, "weak": {10: "w10", 20: "w20"}})
    assert list(runs.items()) == [("unsup @10", "u10"), ("unsup @20", "u20"), ("weak @10", "w10"), ("weak @20", "w20")]
    assert values == {"unsup @10": 10, "unsup @20": 20, "weak @10": 10, "weak @20": 20}
    assert pairs == {"weak @10": "unsup @10", "weak @20": "unsup @20"}
    _, _, pairs = snapshot_settings({"unsup": {10: "u10"}, "weak": {10: "w10", 15: "w15"}})
    assert pairs == {"weak @10": "unsup @10"}  # a step unsup lacks has no reference
    assert by_run(pd.DataFrame({"run": ["a", "b"]}))["setting"].tolist() == ["a", "b"]


# --------------------------------------------------------------------------- the sections, on a study without models
class _FakeStudy:
    """What the sections need of a Study: training returns a name, evaluation rows whose SDR depends
    on the run's name (``score``), and write_ablation summarises them as the real one does."""

    def __init__(self, tmp_path, score, backend="proxy"):
        from weaksep.profiles import get_profile

        self.profile, self.clap_backend, self.score = get_profile("smoke"), backend, score
        self.cache = self.results = tmp_path
        self.manifests, self.progress, self.clap_checkpoint = None, False, None
        self.trained, self.written, self.exported = [], {}, []

    def train(self, regime, n_sources, seed=0, **overrides):
        name = f"{regime} n{n_sources} s{seed}" + "".join(f" {k}={v}" for k, v in sorted(overrides.items()))
        self.trained.append(name)
        return name

    def evaluate(self, runs, n_sources, split="test", with_clean=False):
        rows = []
        for run, model in [*runs.items(), ("mixture", None), *([("clean", None)] if with_clean else [])]:
            for item in range(4):
                for q in range(n_sources):
                    sdr = np.nan if run == "clean" else (0.0 if model is None else self.score(model)) + 0.1 * item + q
                    rows.append(
                        {
                            "run": run,
                            "item": item,
                            "query": q,
                            "sdr": sdr,
                            "sir": sdr,
                            "sar": sdr,
                            "sdri": sdr,
                            "si_sdr": sdr,
                            "clap_top1": float(q == 0),
                            "n_sources": n_sources,
                            "regime": run.split()[0] if model else run,
                            "label_fraction": 0.0,
                            "split": split,
                        }
                    )
        return pd.DataFrame(rows)

    def export_run(self, model, name):
        self.exported.append(name)

    def write_ablation(self, section, rows, reference=None, values=None, config=None):
        table = summarise_ablation(rows, section, self.profile.name, reference, values)
        self.written[section] = (rows, config)
        return table

    def clips(self, split):
        from types import SimpleNamespace

        return SimpleNamespace(labels=[c for c in "abcdefghijk" for _ in range(8)])  # 11 classes x 8 clips

    def snapshots(self, model):
        return {10: f"{model} @10", 20: f"{model} @20"}

    def run_files(self, model):
        return self.cache / "runs" / model

    def selection(self, model):
        path = self.run_files(model) / "selection.json"
        return json.loads(path.read_text()) if path.exists() else None


def test_the_weight_sections_choose_on_validation_and_test_the_choice(tmp_path):
    from weaksep.profiles import get_ablation_plan
    from weaksep.reproduce.ablation_runs import weight_section, weight_test_section

    plan = get_ablation_plan("smoke")
    study = _FakeStudy(tmp_path, lambda m: 3.0 if "contrastive_weight=2.0" in m else 1.0)
    val = weight_section(study, plan)
    rows, config = study.written["weight"]
    assert set(rows["split"]) == {"val"} and val.chosen["weight"] == 2.0
    assert "weak n3 s0 contrastive=False" in study.trained  # weight 0 is the contrastive term switched off
    assert (
        config["values"] == {"w=0": 0.0, "w=0.125": 0.125, "w=0.5": 0.5, "w=2": 2.0}
        and config["plan"]["name"] == "smoke"
    )
    assert val.table.loc[val.table["setting"] == "w=2", "paired_vs"].iloc[0] == "w=0.5"
    test = weight_test_section(study, plan, val.chosen["weight"])
    assert set(study.written["weight_test"][0]["split"]) == {"test"}
    assert sorted(test.table["n_sources"].unique()) == [2, 3]  # the choice differs from the default
    diff = test.table.query("setting == 'chosen w=2' and metric == 'sdr'")["paired_diff"]
    assert diff.tolist() == pytest.approx([2.0, 2.0])


def test_the_fraction_and_length_sections_pair_their_settings(tmp_path):
    from weaksep.profiles import get_ablation_plan
    from weaksep.reproduce.ablation_runs import fraction_section, length_section

    study = _FakeStudy(tmp_path, lambda m: 2.0 if m.startswith("semi") or m.startswith("weak") else 1.0)
    plan = get_ablation_plan("smoke")
    frac = fraction_section(study, plan)
    assert len(frac.notes) == 1 and frac.notes[0].startswith("fraction 0.01")  # 1 % of 88 clips: one class
    sdr = frac.table[frac.table["metric"] == "sdr"].set_index("setting")
    assert list(sdr.index) == ["unsup", "sup@5%", "semi@5%", "sup@25%", "semi@25%", "sup@100%", "mixture"]
    assert sdr.loc["semi@25%", "paired_vs"] == "sup@25%" and sdr.loc["semi@25%", "paired_diff"] == pytest.approx(1.0)
    assert sdr.loc["sup@100%", "value"] == 1.0 and np.isnan(sdr.loc["unsup", "value"])
    length = length_section(study, plan)
    sdr = length.table[length.table["metric"] == "sdr"].set_index("setting")
    assert list(sdr.index) == ["unsup @10", "unsup @20", "weak @10", "weak @20"]  # no mixture row
    assert sdr.loc["weak @20", "paired_vs"] == "unsup @20" and sdr.loc["weak @20", "value"] == 20
    assert (
        f"unsup n3 s0 snapshots=True steps={study.profile.steps * plan.length_factor} validate=False" in study.trained
    )


def test_the_loss_text_and_clap_sections(tmp_path, monkeypatch):
    import weaksep.reproduce.study
    from weaksep.profiles import get_ablation_plan
    from weaksep.reproduce.ablation_runs import clap_section, loss_section, text_section

    plan = get_ablation_plan("smoke")
    study = _FakeStudy(tmp_path, lambda m: 0.0 if m.startswith("unsup") else 1.0)
    loss = loss_section(study, plan)
    assert sorted(loss.table["n_sources"].unique()) == [2, 3]
    assert "weak n3 s0 consistency=False" in study.trained and "sup n2 s0" in study.trained
    assert "clean" in set(loss.table["setting"])
    text = text_section(study, plan)
    assert set(text.table["setting"]) == {"sentence", "entity mean", "mixture"}
    assert "unsup n3 s0 mixture_text=entity_mean" in study.trained

    assert clap_section(_FakeStudy(tmp_path, len, backend="laion"), plan).table is None
    study.clap = lambda: setattr(study, "clap_checkpoint", "default.pt")
    study.clap_variant = lambda steps: f"clap-{steps}.pt"
    accuracy = {"default.pt": 0.9, "clap-12.pt": 0.5, "clap-0.pt": 0.1}
    siblings = []  # the CLAP a sibling study was asked for, and its backend: the variants are proxies
    study.sibling = lambda clap_checkpoint, clap_backend: (
        siblings.append((clap_checkpoint, clap_backend)) or _FakeStudy(tmp_path, lambda m: 1.0)
    )
    monkeypatch.setattr(
        weaksep.reproduce.study, "clap_card_of", lambda p: {"zero_shot_accuracy": accuracy[p], "mixture_map": 0.5}
    )
    clap = clap_section(study, plan)
    assert list(dict.fromkeys(clap.table["setting"])) == [
        "unsup",
        "mixture",
        "weak · CLAP 120 steps",
        "clean · CLAP 120 steps",
        "weak · CLAP 12 steps",
        "clean · CLAP 12 steps",
        "weak · CLAP untrained",
        "clean · CLAP untrained",
    ]
    assert study.written["clap"][1]["values"]["clean · CLAP 12 steps"] == 0.5 and len(clap.notes) == 3
    assert siblings == [("default.pt", "proxy"), ("clap-12.pt", "proxy"), ("clap-0.pt", "proxy")]


def test_the_unheard_clap_section_pairs_weak_with_each_clap_against_one_unsup(tmp_path, monkeypatch):
    import weaksep.data.soundfonts
    import weaksep.reproduce.study
    from weaksep.profiles import get_ablation_plan
    from weaksep.reproduce.ablation_runs import unheard_clap_section

    plan = get_ablation_plan("quick")
    assert all("timgm6mb" not in fonts for fonts in plan.unheard_soundfonts)
    assert unheard_clap_section(_FakeStudy(tmp_path, len, backend="laion"), plan).table is None
    on_user_data = _FakeStudy(tmp_path, len)
    on_user_data.manifests = tmp_path
    assert "not rendered" in unheard_clap_section(on_user_data, plan).notes[0]

    # Only Merlin is installed: the Debian set shrinks to Merlin alone, the same CLAP, and is skipped.
    monkeypatch.setattr(
        weaksep.data.soundfonts, "available_soundfonts", lambda fonts: [f for f in fonts if f == "merlin"]
    )
    study = _FakeStudy(tmp_path, lambda m: 0.0 if m.startswith("unsup") else 1.0)
    study.clap = lambda: setattr(study, "clap_checkpoint", "default.pt")
    study.clap_variant = lambda soundfonts, seed: f"clap-{'+'.join(soundfonts)}.pt"
    variant = _FakeStudy(tmp_path, lambda m: 0.5)  # weak with the Merlin CLAP scores 0.5 dB over unsup
    study.sibling = lambda clap_checkpoint, clap_backend: variant if clap_backend == "proxy" else None
    accuracy = {"default.pt": 0.94, "clap-merlin.pt": 0.6}
    monkeypatch.setattr(
        weaksep.reproduce.study, "clap_card_of", lambda p: {"zero_shot_accuracy": accuracy[p], "mixture_map": 0.5}
    )
    result = unheard_clap_section(study, plan)
    sdr = result.table[result.table["metric"] == "sdr"].set_index(["n_sources", "setting"])
    assert sorted(result.table["n_sources"].unique()) == [2, 3]
    assert sdr.loc[(3, "weak · CLAP merlin"), "paired_vs"] == "unsup"
    assert sdr.loc[(3, "weak · CLAP merlin"), "paired_diff"] == pytest.approx(0.5)
    assert sdr.loc[(2, "weak · CLAP merlin+timgm6mb"), "paired_diff"] == pytest.approx(1.0)
    assert sdr.loc[(2, "weak · CLAP merlin"), "value"] == 0.6
    assert study.trained == ["unsup n2 s0", "weak n2 s0", "unsup n3 s0", "weak n3 s0"]
    assert any("skipped (same fonts as CLAP merlin)" in n for n in result.notes)
    with pytest.raises(ValueError, match="separation soundfont"):
        unheard_clap_section(study, get_ablation_plan("quick", unheard_soundfonts=[["merlin", "timgm6mb"]]))


def test_the_design_section_undoes_each_change_on_its_own(tmp_path):
    from weaksep.profiles import get_ablation_plan
    from weaksep.reproduce.ablation_runs import design_section

    study = _FakeStudy(tmp_path, lambda m: 1.0 if "=" in m else 2.0)  # the undone runs score 1 dB less
    (tmp_path / "runs" / "unsup n2 s0").mkdir(parents=True)
    (tmp_path / "runs" / "unsup n2 s0" / "selection.json").write_text('{"best_val_sdr": 7.0, "best_step": 200}')
    result = design_section(study, get_ablation_plan("smoke"))
    assert {"unsup n2 s0 text_norm=batch", "weak n2 s0 text_norm=batch"} <= set(study.trained)
    assert "sup n2 s0 sup_input=mixture_of_mixtures" in study.trained
    sdr = result.table[result.table["metric"] == "sdr"].set_index("setting")
    assert sdr.loc["weak, BatchNorm text", "paired_vs"] == "weak"
    assert sdr.loc["sup on mixtures of mixtures", "paired_diff"] == pytest.approx(-1.0)
    assert len(result.notes) == 3 and "unsup 7.00 dB at step 200" in result.notes[0]
    assert "unsup, BatchNorm text (no validation record)" in result.notes[0]


def test_the_lr_section_chooses_a_rate_per_regime_on_validation(tmp_path):
    from weaksep.profiles import get_ablation_plan
    from weaksep.reproduce.ablation_runs import lr_section

    # sup is best at 3e-3, every other regime at the profile's 1e-3 (its runs carry no lr override)
    study = _FakeStudy(
        tmp_path, lambda m: 3.0 if m.startswith("sup") and "lr=0.003" in m else (2.0 if "lr=" not in m else 1.0)
    )
    result = lr_section(study, get_ablation_plan("quick"))
    rows, config = study.written["lr"]
    assert set(rows["split"]) == {"val"} and config["lrs"] == [0.0003, 0.001, 0.003]
    assert result.chosen["lr"] == {"unsup": 0.001, "weak": 0.001, "sup": 0.003, "sup@5%": 0.003, "semi@5%": 0.001}
    assert (
        "sup n2 s0 label_fraction=0.05 lr=0.0003" in study.trained and "semi n2 s0 label_fraction=0.05" in study.trained
    )
    sdr = result.table[result.table["metric"] == "sdr"].set_index("setting")
    assert sdr.loc["sup lr=0.003", "paired_vs"] == "sup lr=0.001" and sdr.loc["sup lr=0.003", "value"] == 0.003
    with pytest.raises(ValueError, match="lr grid"):
        get_ablation_plan("smoke", lrs=(0.0,))


def test_the_lr_test_section_scores_the_chosen_rates_and_pairs_semi_with_sup_at_its_chosen_rate(tmp_path):
    from weaksep.profiles import get_ablation_plan
    from weaksep.reproduce.ablation_runs import lr_test_section

    # sup@5% gains 2 dB at 3e-3, semi@5% 0.5 dB: at the chosen rates semi is *below* sup
    gain = {"sup n2": 2.0, "semi n2": 0.5}
    study = _FakeStudy(tmp_path, lambda m: 1.0 + sum(g for k, g in gain.items() if m.startswith(k) and "lr=0.003" in m))
    chosen = {"unsup": 0.001, "sup": 0.0003, "sup@5%": 0.003, "semi@5%": 0.003}
    result = lr_test_section(study, get_ablation_plan("quick"), chosen)
    rows, config = study.written["lr_test"]
    assert set(rows["split"]) == {"test"} and sorted(rows["seed"].unique()) == [0, 1, 2]
    assert config["chosen"] == chosen and config["seeds"] == [0, 1, 2]
    assert "sup n2 s2 label_fraction=0.05 lr=0.003" in study.trained and "unsup n2 s1" in study.trained
    assert not any("unsup" in t and "lr=" in t for t in study.trained)  # the profile's rate was chosen: one run
    sdr = result.table[result.table["metric"] == "sdr"].set_index("setting")
    assert sdr.loc["semi@5% lr=0.003", "paired_vs"] == "sup@5% lr=0.003"
    assert sdr.loc["semi@5% lr=0.003", "paired_diff"] == pytest.approx(-1.5)
    assert sdr.loc["semi@5% lr=0.001", "paired_vs"] == "sup@5% lr=0.001"
    assert sdr.loc["sup lr=0.0003", "paired_vs"] == "sup lr=0.001" and sdr.loc["sup lr=0.0003", "value"] == 0.0003
    assert sdr.loc["semi@5% lr=0.003", "paired_n"] == 3 * 4 * 2  # seeds x items x queries, each paired once
    assert (sdr.loc[sdr.index != "mixture", "n_seeds"] == 3).all()
    from weaksep.reproduce.plots import plot_ablation

    pngs = plot_ablation(result.table, tmp_path / "figures")
    assert pngs and all(png.stat().st_size > 1000 for png in pngs)


def test_the_sections_asked_for_come_in_notebook_order_and_unknown_ones_are_named():
    from weaksep.reproduce.ablation_runs import SECTIONS, check_sections

    assert check_sections(None) == SECTIONS
    assert check_sections("lr, design") == ("design", "lr")  # as `make ablations SECTIONS=lr,design` passes it
    assert check_sections(["unheard", "loss"]) == ("loss", "unheard")
    with pytest.raises(ValueError, match="unknown ablation section.*'lrs'.*design"):
        check_sections("design,lrs")


def test_the_group_section_pairs_every_candidate_set_with_the_headline(tmp_path):
    from weaksep.profiles import get_ablation_plan
    from weaksep.reproduce.ablation_runs import contrastive_group_section

    plan = get_ablation_plan("quick", group_seeds=(0, 1))
    groups = {"contrastive_group=1": 0.25, "contrastive_group=2": 1.0, "contrastive_group=8": 1.5}
    study = _FakeStudy(tmp_path, lambda m: next((v for k, v in groups.items() if k in m), 0.0))
    result = contrastive_group_section(study, plan)
    sdr = result.table[result.table["metric"] == "sdr"].set_index(["n_sources", "setting"])
    assert sorted(result.table["n_sources"].unique()) == [2, 3]
    assert sdr.loc[(3, "group 1"), "paired_vs"] == "group 2 (headline)"
    assert sdr.loc[(3, "group 1"), "paired_diff"] == pytest.approx(-0.75)
    assert sdr.loc[(2, "group 8"), "paired_diff"] == pytest.approx(0.5)
    assert sdr.loc[(2, "group 8"), "paired_n"] == 2 * 4 * 2  # seeds x mixtures x queries, paired
    assert sdr.loc[(2, "unsup"), "paired_vs"] == ""  # beside, for scale
    assert "weak n3 s1 contrastive_group=8" in study.trained
    assert study.exported == ["weak_n2_group1", "weak_n2_group8", "weak_n3_group1", "weak_n3_group8"] + [
        "weak_n2_group1_s1",
        "weak_n2_group8_s1",
        "weak_n3_group1_s1",
        "weak_n3_group8_s1",
    ]
    assert study.written["group"][1]["headline_group"] == 2
