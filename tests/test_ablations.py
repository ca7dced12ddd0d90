"""The ablation machinery: run identities, training on from a shorter run, the mixture-text option,
CLAP recognition of estimates, and the ablation tables with their paired differences."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from weaksep.ablations import ABLATION_COLUMNS, add_verdicts, load_ablation, paired_difference, sdr_view, \
    summarise_ablation, save_ablation, verdict
from weaksep.checkpoint import read_checkpoint
from weaksep.data import MixtureSampler
from weaksep.metrics import clap_scores
from weaksep.train import RunConfig, _entity_means, compute_losses, same_run


# --------------------------------------------------------------------------- run identity
def test_a_field_added_later_keeps_old_runs_identity(smoke_study):
    cfg = smoke_study.run_config("unsup", 2)
    old = {k: v for k, v in cfg.to_dict().items() if k != "mixture_text"}  # a config saved before the field existed
    assert same_run(old, cfg)
    assert "mixture_text" not in cfg.identity()
    other = smoke_study.run_config("unsup", 2, mixture_text="entity_mean")
    assert not same_run(old, other) and other.identity()["mixture_text"] == "entity_mean"
    assert smoke_study.run_dir(cfg) != smoke_study.run_dir(other)
    assert same_run(smoke_study.run_config("unsup", 2, steps=7).to_dict(), cfg, ignore=("steps",))
    with pytest.raises(ValueError, match="mixture_text"):
        RunConfig("unsup", 2, {}, mixture_text="caption")


def _weights(path):
    return read_checkpoint(path)["model"]


def test_a_longer_run_trains_on_from_the_shorter_one_to_the_same_weights(smoke_study, tmp_path):
    from weaksep.study import Study

    study = Study(smoke_study.profile, data_root=tmp_path / "cache", results_dir=tmp_path / "results",
                  clap_checkpoint=smoke_study.clap_info()["checkpoint"], progress=False)
    # The reference: 8 steps from scratch in a folder of its own (no shorter run to start from).
    scratch = _weights(study.train("weak", 2, steps=8, out_dir=tmp_path / "scratch"))
    short = study.train("weak", 2, steps=4)
    longer = study.train("weak", 2, steps=8, snapshots=True)
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

    from weaksep.model import Separator
    from weaksep.train import separator_config

    torch.manual_seed(0)
    model = Separator(separator_config(smoke_study.profile, clap))
    sentence = compute_losses(model, clap, batch, smoke_study.run_config("unsup", 2), smoke_study.profile.sample_rate)
    mean = compute_losses(model, clap, batch, smoke_study.run_config("unsup", 2, mixture_text="entity_mean"),
                          smoke_study.profile.sample_rate)
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
                out.append({"setting": s, "run": s, "regime": "weak" if s != "unsup" else "unsup", "label_fraction": 0.0,
                            "n_sources": n, "item": k, "query": q, "sdr": sdr, "sir": sdr, "sar": sdr,
                            "sdri": sdr, "si_sdr": sdr, "clap_top1": float(q == 0)})
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
    assert got["paired_ci95"].iloc[0] < 0.1 < 1.0 < a.std()


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
    assert verdict(1.0, 0.5) == "better" and verdict(-1.0, 0.5) == "worse"
    assert verdict(0.2, 0.5) == "overlaps" and verdict(float("nan"), 0.1) == "n/a"


def test_ablation_figures_and_summary_links(tmp_path):
    from weaksep.plots import plot_ablation, redraw_all
    from weaksep.summary import summary_markdown

    rng = np.random.default_rng(2)
    rows = _rows(rng, ["unsup", "w=0.1", "w=1"], n=3)
    for section, values in (("loss", None), ("weight", {"w=0.1": 0.1, "w=1": 1.0})):
        save_ablation(summarise_ablation(rows, section, "smoke", "unsup", values), tmp_path / f"07_ablations_{section}.csv")
    pngs = plot_ablation(tmp_path / "07_ablations_weight.csv", tmp_path / "figures")
    assert [p.name for p in pngs] == ["07_ablations_weight.png", "07_ablations_weight_paired.png",
                                      "07_ablations_weight_clap_top1.png"]
    assert all(p.stat().st_size > 1000 for p in pngs)
    out = redraw_all(tmp_path)
    assert (tmp_path / "figures" / "07_ablations_loss.png") in out["figures"]
    md = summary_markdown(tmp_path)
    assert "[07_ablations_loss](07_ablations_loss.csv)" in md and "07_ablations_weight" in md


def test_command_line_ablation_switches(smoke_study, tmp_path):
    from weaksep.train import main

    out = tmp_path / "run"
    assert main(["--regime", "weak", "--profile", "smoke", "--out", str(out), "--steps", "2", "--no-progress",
                 "--data-root", str(smoke_study.cache), "--clap-checkpoint", smoke_study.clap_info()["checkpoint"],
                 "--no-contrastive", "--mixture-text", "entity_mean"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["contrastive"], cfg["consistency"], cfg["mixture_text"], cfg["steps"]) == (False, True, "entity_mean", 2)
    assert "loss_contrastive" not in pd.read_csv(out / "log.csv").dropna(axis=1, how="all").columns
