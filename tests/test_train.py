"""The training loop: regimes, determinism, resume, non-finite losses, DDP, and that training helps."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest
import torch

from weaksep.method.objective import BatchSource
from weaksep.training.checkpoint import read_checkpoint
from weaksep.training.train import NonFiniteLossError, train


def _run(study, regime, out, steps=6, stop_after=None, n=2, val=None, profile=None, **kw):
    cfg = study.run_config(regime, n, seed=kw.pop("seed", 0), steps=steps, **kw)
    return train(
        cfg,
        profile or study.profile,
        study.clips("train"),
        study.clap(),
        out,
        progress=False,
        stop_after=stop_after,
        val=val,
    )


def _weights(path):
    return read_checkpoint(path)["model"]


def test_unsup_and_weak_batches_carry_no_single_sources(smoke_study):
    clips = smoke_study.clips("train")
    for regime in ("unsup", "weak"):
        cfg = smoke_study.run_config(regime, 2)
        batches = BatchSource(clips, cfg, smoke_study.profile, 4, 0).batch(0)
        assert batches.labelled is None and batches.weak.sources is None
        assert torch.allclose(batches.weak.mixture, batches.weak.submixtures.sum(1), atol=1e-6)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_sup_trains_on_mixtures_of_exactly_n_sources(smoke_study, n):
    """The test distribution: one mixture of N single sources, each queried (not a mixture of mixtures)."""
    clips = smoke_study.clips("train")
    batch = BatchSource(clips, smoke_study.run_config("sup", n), smoke_study.profile, 4, 0).batch(0).labelled
    assert batch.sources.shape[:3] == (4, 1, n)
    assert torch.allclose(batch.mixture, batch.sources[:, 0].sum(1), atol=1e-6)
    assert all(len(e) == 1 and len(e[0]) == n for e in batch.entities)
    old = (
        BatchSource(clips, smoke_study.run_config("sup", n, sup_input="mixture_of_mixtures"), smoke_study.profile, 4, 0)
        .batch(0)
        .labelled
    )
    assert old.sources.shape[:3] == (4, 2, n)


def test_semi_labelled_subset_is_fixed_and_saved(smoke_study, tmp_path):
    cfg = smoke_study.run_config("semi", 2, label_fraction=0.25)
    a = BatchSource(smoke_study.clips("train"), cfg, smoke_study.profile, 4, 0)
    b = BatchSource(smoke_study.clips("train"), cfg, smoke_study.profile, 4, 0)
    assert a.labelled_indices == b.labelled_indices
    assert len(a.labelled_indices) == round(0.25 * len(smoke_study.clips("train")))
    batches = a.batch(3)
    assert len(batches.labelled.texts) == 2 and len(batches.weak.texts) == 2
    assert batches.weak.sources is None
    _run(smoke_study, "semi", tmp_path / "semi", steps=2, label_fraction=0.25)
    assert (tmp_path / "semi" / "labelled_clips.json").exists()


def test_same_seed_same_weights_other_seed_other_weights(smoke_study, tmp_path):
    a = _weights(_run(smoke_study, "weak", tmp_path / "a"))
    b = _weights(_run(smoke_study, "weak", tmp_path / "b"))
    c = _weights(_run(smoke_study, "weak", tmp_path / "c", seed=1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_interrupted_run_resumes_to_the_same_weights(smoke_study, tmp_path):
    full = _weights(_run(smoke_study, "weak", tmp_path / "full", steps=8))
    out = tmp_path / "resumed"
    _run(smoke_study, "weak", out, steps=8, stop_after=3)  # "killed" after 3 steps
    assert read_checkpoint(out / "checkpoint.pt")["step"] == 3 and not (out / "model.pt").exists()
    resumed = _weights(_run(smoke_study, "weak", out, steps=8))
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    log = pd.read_csv(out / "log.csv")
    assert log["step"].tolist() == list(range(8))  # one row per step, none twice


def test_finished_run_is_reused_and_foreign_config_refused(smoke_study, tmp_path):
    path = _run(smoke_study, "unsup", tmp_path / "r", steps=2)
    mtime = path.stat().st_mtime_ns
    assert _run(smoke_study, "unsup", tmp_path / "r", steps=2) == path and path.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="another config"):
        _run(smoke_study, "unsup", tmp_path / "r", steps=3)


def test_non_finite_loss_stops_naming_step_and_term(smoke_study, tmp_path, monkeypatch):
    import weaksep.training.train as tr

    real = tr.training_losses
    calls = {"n": 0}

    def poisoned(*a, **k):
        terms = real(*a, **k)
        calls["n"] += 1
        if calls["n"] == 3:
            terms["loss_unsup"] = terms["loss_unsup"] * float("nan")
        return terms

    monkeypatch.setattr(tr, "training_losses", poisoned)
    study = smoke_study
    prof = study.profile.replace(checkpoint_every=1)
    cfg = study.run_config("unsup", 2, steps=5)
    with pytest.raises(NonFiniteLossError, match="step 2: loss term loss_unsup"):
        train(cfg, prof, study.clips("train"), study.clap(), tmp_path / "nan", progress=False)
    assert read_checkpoint(tmp_path / "nan" / "checkpoint.pt")["step"] == 2  # the last good state


def test_validation_keeps_the_best_checkpoint_and_records_the_selection(smoke_study, tmp_path):
    import json

    prof = smoke_study.profile.replace(checkpoint_every=5)
    path = _run(smoke_study, "sup", tmp_path / "v", steps=15, val=smoke_study.testset(2, "val"), profile=prof)
    assert path.name == "best.pt"
    val = pd.read_csv(tmp_path / "v" / "val.csv")
    sel = json.loads((tmp_path / "v" / "selection.json").read_text())
    assert val["step"].tolist() == [5, 10, 15]
    assert sel["best_step"] == int(val.loc[val["val_sdr"].idxmax(), "step"])
    assert read_checkpoint(path)["step"] == sel["best_step"]
    assert set(sel) >= {"stop_step", "plateaued", "rise_last_fifth_db"}


def test_plateau_rise():
    from weaksep.training.validation import plateau_rise

    assert plateau_rise([100, 200], [1.0, 2.0]) is None  # too few points to say
    assert plateau_rise([100, 200, 300, 400, 500], [1, 2, 3, 4, 5]) == pytest.approx(1.0)  # still rising
    assert plateau_rise([100, 200, 300, 400, 500], [1, 3, 3.05, 3.0, 3.02]) == pytest.approx(-0.03)


def test_text_norm_is_the_same_function_for_every_regime(smoke_study, tmp_path):
    """Vocabulary statistics come from the CLAP, not from a regime's training queries."""
    a = _run(smoke_study, "unsup", tmp_path / "u", steps=2)
    b = _run(smoke_study, "sup", tmp_path / "s", steps=2)
    na, nb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    assert torch.equal(na["text_norm.mean"], nb["text_norm.mean"]) and torch.equal(
        na["text_norm.std"], nb["text_norm.std"]
    )
    assert float(na["text_norm.std"].min()) > 0


def _mean_sdr(study, path):
    return float(study.evaluate({"m": path}, 2).query("run == 'm'")["sdr"].mean())


@pytest.mark.slow
def test_supervised_training_beats_its_untrained_self_by_3_db(smoke_study, tmp_path):
    untrained = _run(smoke_study, "sup", tmp_path / "untrained", steps=0)
    trained = _run(smoke_study, "sup", tmp_path / "trained", steps=300)
    before, after = _mean_sdr(smoke_study, untrained), _mean_sdr(smoke_study, trained)
    assert after - before >= 3.0, (before, after)


@pytest.mark.slow
def test_weak_training_lowers_its_contrastive_loss(smoke_study, tmp_path):
    path = _run(smoke_study, "weak", tmp_path / "weak", steps=120)
    log = pd.read_csv(path.parent / "log.csv")
    first, last = log["loss_contrastive"].iloc[:20].mean(), log["loss_contrastive"].iloc[-20:].mean()
    assert last < first, (first, last)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def _torchrun_train(study, out, *args):
    """``weaksep train`` at the smoke profile under torchrun, two gloo processes; a hung collective
    fails after 120 s instead of the default hour."""
    env = {
        **os.environ,
        "WEAKSEP_CACHE": str(study.cache),
        "WEAKSEP_RESULTS": str(study.results),
        "WEAKSEP_DIST_TIMEOUT_S": "120",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(_free_port()), "-m", "weaksep", "train", "--profile", "smoke"]
    cmd += ["--out", str(out), "--clap-checkpoint", str(study.clap_checkpoint), "--no-progress", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_ddp_with_gloo_on_two_processes(smoke_study, tmp_path):
    """torchrun's environment, two CPU processes: the run finishes its budget with identical replicas
    (the loop checks it) and its loss falls like a single-process run's."""
    done = _torchrun_train(smoke_study, tmp_path / "ddp", "--regime", "unsup", "--sources", "2", "--steps", "40")
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = pd.read_csv(tmp_path / "ddp" / "log.csv")
    single = pd.read_csv(_run(smoke_study, "unsup", tmp_path / "single", steps=40).parent / "log.csv")
    assert len(ddp) == 40
    for log in (ddp, single):
        assert log["loss_total"].iloc[-10:].mean() < log["loss_total"].iloc[:10].mean()
    ratio = ddp["loss_total"].iloc[-10:].mean() / single["loss_total"].iloc[-10:].mean()
    assert 0.5 < ratio < 2.0, ratio


def test_ddp_early_stop_ends_every_process_at_the_same_step(smoke_study, tmp_path):
    """Validation on rank 0 finds a plateau (any rise counts under --plateau-db 1000) at the first
    checkpoint past half the budget; every rank must leave the loop there. Before the stop was
    shared, rank 0 left alone and the job hung in the next all-reduce until the group timed out."""
    out = tmp_path / "stop"
    args = ["--regime", "unsup", "--sources", "2", "--steps", "60", "--plateau-db", "1000"]
    done = _torchrun_train(smoke_study, out, *args)
    assert done.returncode == 0, done.stderr[-3000:]  # the loop's own replica check passed too
    selection = json.loads((out / "selection.json").read_text())
    assert selection["stopped_early"] and selection["stop_step"] == 30
    assert len(pd.read_csv(out / "log.csv")) == 30
    assert read_checkpoint(out / "model.pt")["step"] == 30


def test_a_committed_model_with_the_same_run_config_is_used_not_trained(smoke_study, tmp_path, capsys):
    """Notebooks on a fresh clone: a model in results/models whose saved run config is the one asked
    for is used as it is; with reuse off (make reproduce), or for another config, it is not."""
    from weaksep.reproduce.study import Study

    path = smoke_study.train("unsup", 2, steps=2, validate=False)
    results = tmp_path / "results"
    committed = Study(
        smoke_study.profile,
        data_root=tmp_path / "fresh_cache",
        results_dir=results,
        clap_checkpoint=smoke_study.clap_checkpoint,
        progress=False,
    )
    exported = committed.export_run(path, "unsup_n2")
    reusing = Study(
        smoke_study.profile,
        data_root=tmp_path / "fresh_cache",
        results_dir=results,
        clap_checkpoint=smoke_study.clap_checkpoint,
        progress=False,
        reuse_committed=True,
    )
    assert reusing.train("unsup", 2, steps=2, validate=False) == exported
    assert "using the committed model" in capsys.readouterr().out
    assert not (tmp_path / "fresh_cache" / "smoke" / "runs").exists()  # nothing trained
    assert reusing.committed_model(reusing.run_config("unsup", 2, steps=3)) is None  # another config
    assert committed.committed_model(committed.run_config("unsup", 2, steps=2)) is None  # reuse off


def test_a_profile_with_the_same_clap_settings_conditions_on_another_profiles_committed_clap(
    smoke_study, tmp_path, monkeypatch, capsys
):
    """``converged`` shares quick's CLAP settings: with reuse on it takes quick's committed CLAP
    (results/models) instead of pretraining one of its own, and copies it beside its own models."""
    import shutil

    from weaksep.paths import file_sha256
    from weaksep.reproduce.study import Study

    same = [
        Study(name, data_root=tmp_path / "c", progress=False).default_clap_path().name
        for name in ("quick", "converged")
    ]
    assert same[0] == same[1]

    monkeypatch.setenv("WEAKSEP_RESULTS", str(tmp_path / "results"))  # quick's results are results/ itself
    quick_models = tmp_path / "results" / "models"
    quick_models.mkdir(parents=True)
    shutil.copyfile(smoke_study.clap_checkpoint, quick_models / "clap_proxy.pt")
    (quick_models / "clap_proxy.source").write_text(smoke_study.clap_checkpoint.name + "\n")
    fresh = tmp_path / "fresh_cache"
    assert Study(smoke_study.profile, data_root=fresh, progress=False)._committed_clap() is None  # reuse off
    other = Study(smoke_study.profile, data_root=fresh, progress=False, reuse_committed=True)
    assert other.results == tmp_path / "results" / "smoke" and not (other.results / "models").exists()
    other.clap_card()
    assert "using the committed default CLAP" in capsys.readouterr().out
    assert file_sha256(other.clap_checkpoint) == file_sha256(smoke_study.clap_checkpoint)
    assert file_sha256(other.results / "models" / "clap_proxy.pt") == file_sha256(smoke_study.clap_checkpoint)


def test_the_converged_profile_is_quick_trained_longer_with_its_decay_before_the_window_the_rule_reads():
    """Only the training length, the schedule, the earliest stop and the seeds differ, so its tables
    compare with quick's. A rate decay inside the last fifth would make every run's last fifth rise,
    never a plateau; an early stop allowed before the decay was validated would skip the decay."""
    from weaksep.profiles import get_profile
    from weaksep.training.validation import LAST_SHARE

    quick, converged = get_profile("quick").to_dict(), get_profile("converged").to_dict()
    differ = {k for k in quick if quick[k] != converged[k]}
    assert differ == {"name", "steps", "lr_decay_every", "min_steps_fraction", "seeds"}
    decay_validated = converged["lr_decay_every"] + converged["checkpoint_every"]
    assert decay_validated <= (1 - LAST_SHARE) * converged["steps"]
    assert decay_validated <= converged["min_steps_fraction"] * converged["steps"]
    assert len(converged["seeds"]) >= 3 and converged["steps"] >= 4 * quick["steps"]


def test_stopping_lists_every_run_of_a_table_for_every_seed(tmp_path):
    """The table's stopping record reads each exported run's selection.json, seed 0 and the others alike."""
    import json

    from weaksep.reproduce.notebook import stopping
    from weaksep.reproduce.study import Study

    study = Study("smoke", data_root=tmp_path / "cache", results_dir=tmp_path / "results", progress=False)
    config = {"runs": {"weak": {"regime": "weak"}, "sup@5%": {"regime": "sup"}}, "seeds": [0, 2], "n_sources": 3}
    (study.results / "configs").mkdir(parents=True)
    (study.results / "configs" / "t.json").write_text(json.dumps(config))
    for export, stop in (("weak_n3", 800), ("weak_n3_s2", 600), ("sup_at_5pct_n3", 400)):  # sup@5% seed 2 kept none
        (study.results / "runs" / export).mkdir(parents=True)
        selection = {"best_step": stop - 200, "stop_step": stop, "plateaued": stop < 800}
        (study.results / "runs" / export / "selection.json").write_text(json.dumps(selection))
    # What a run cost is the sum of its log's per-step seconds (validations included); no log: NaN.
    (study.results / "runs" / "weak_n3" / "log.csv").write_text("step,loss_total,seconds\n0,1.0,30.0\n1,0.9,90.0\n")
    table = stopping(study, "t")
    assert table["train_minutes"].iloc[0] == pytest.approx(2.0)
    assert table["train_minutes"].iloc[1:].isna().all()
    assert table.index.tolist() == [("weak", 0), ("weak", 2), ("sup@5%", 0)]
    assert table["stop_step"].tolist() == [800, 600, 400]
    assert table["plateaued"].tolist() == [False, True, True]
    with pytest.raises(FileNotFoundError, match="no_such_table"):
        stopping(study, "no_such_table")


@pytest.mark.parametrize("regime", ["weak", "semi"])
def test_accumulated_micro_batches_give_the_update_of_the_whole_batch(smoke_study, regime):
    """Two micro-batches of 2 (one contrastive group each) against one batch of 4: the same loss and
    gradients to float tolerance. BatchNorm in eval mode: in training mode it normalises each
    micro-batch on its own, as each GPU's share under DDP, which no accumulation can undo."""
    import copy

    from weaksep.training.train import accumulated_backward, build_separator

    study = smoke_study
    prof = study.profile.replace(batch_size=8 if regime == "semi" else 4)
    cfg = study.run_config(regime, 2, steps=5, contrastive_group=2)
    batches = BatchSource(study.clips("train"), cfg, prof, prof.batch_size, 0).batch(0)
    whole = build_separator(cfg, prof, study.clap(), study.clips("train")).eval()
    parts = copy.deepcopy(whole)
    t1 = accumulated_backward(whole, study.clap(), batches, cfg, prof.sample_rate, accumulate=1)
    t2 = accumulated_backward(parts, study.clap(), batches, cfg, prof.sample_rate, accumulate=2)
    assert "loss_contrastive" in t1
    for k in t1:
        assert torch.allclose(t1[k], t2[k], rtol=1e-5), k
    for (name, a), b in zip(whole.named_parameters(), parts.parameters()):
        if a.grad is not None:
            # float sums in another order: equal to 1e-5 of the tensor's largest gradient
            assert (a.grad - b.grad).abs().max() <= 1e-5 * a.grad.abs().max(), name
    with pytest.raises(ValueError, match="whole contrastive groups"):
        accumulated_backward(
            parts,
            study.clap(),
            batches,
            cfg.__class__(**{**cfg.to_dict(), "contrastive_group": 4}),
            prof.sample_rate,
            accumulate=2,
        )


def test_a_study_with_two_gpus_trains_each_run_under_torchrun(smoke_study, tmp_path, monkeypatch):
    """make reproduce GPUS=2: Study.train launches torchrun (two gloo processes here) with the run's
    own config, and returns the model as an in-process run would; the log is the DDP run's."""
    from weaksep.reproduce.study import Study

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("WEAKSEP_DIST_TIMEOUT_S", "120")
    study = Study("smoke", data_root=smoke_study.cache, results_dir=smoke_study.results, progress=False, gpus=2)
    study.clap_checkpoint = smoke_study.clap_checkpoint
    model = study.train("unsup", 2, seed=1, steps=20, out_dir=tmp_path / "run")
    assert model == tmp_path / "run" / "best.pt" and model.exists()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["seed"] == 1 and saved["steps"] == 20 and saved["regime"] == "unsup"
    assert len(pd.read_csv(tmp_path / "run" / "log.csv")) == 20


def test_validation_shared_out_over_processes_gives_the_one_process_means(smoke_study, monkeypatch):
    """Two ranks score mixtures 0, 2, ... and 1, 3, ...; the all-reduced sums give validate()'s means."""
    import torch.distributed

    from weaksep.training.train import build_separator
    from weaksep.training.validation import validate, validate_across_processes

    cfg = smoke_study.run_config("unsup", 2, steps=5)
    model = build_separator(cfg, smoke_study.profile, smoke_study.clap(), smoke_study.clips("train"))
    val = smoke_study.testset(2, "val")
    shares = []
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda t: shares.append(t.clone()))
    for rank in (0, 1):
        validate_across_processes(model, smoke_study.clap(), val, 2, rank, 2)
    total = shares[0] + shares[1]
    whole = validate(model, smoke_study.clap(), val, 2)
    assert int(total[2]) == 2 * len(val)  # every query once
    assert float(total[0] / total[2]) == pytest.approx(whole["val_sdr"], abs=1e-6)  # other batches: float noise
    assert float(total[1] / total[2]) == pytest.approx(whole["val_si_sdr"], abs=1e-6)
