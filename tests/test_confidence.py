"""CLAP confidence scores of separations, and the absent-sound threshold measured on the study's test mixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from weaksep.cli import main
from weaksep.data import corpus_classes
from weaksep.evaluation.scores import clap_similarity
from weaksep.inference.confidence import confidence_scores, cut_windows, load_threshold, window_starts
from weaksep.paths import file_sha256


def test_windows_cover_the_signal_and_short_signals_are_repeated():
    assert window_starts(10, 4) == [0, 4, 6]  # the last window ends at the end
    assert window_starts(8, 4) == [0, 4]
    assert window_starts(3, 4) == [0]
    w = cut_windows(torch.arange(10.0).reshape(1, 10), 4)
    assert w.shape == (1, 3, 4) and w[0, 2].tolist() == [6, 7, 8, 9]
    assert cut_windows(torch.tensor([[1.0, 2.0, 3.0]]), 7)[0, 0].tolist() == [1, 2, 3, 1, 2, 3, 1]
    with pytest.raises(ValueError, match="0 samples"):
        window_starts(0, 4)


def test_scores_are_clap_similarities_averaged_over_the_non_silent_windows(smoke_study):
    clap, p = smoke_study.clap(), smoke_study.profile
    mix = smoke_study.testset(2)
    w, rate = p.clip_samples, p.sample_rate
    prompts = list(mix.labels[0])
    first, second = mix.mixtures[0], mix.mixtures[1]  # one clip each: one window
    est = mix.sources[0][:, None]  # (P, 1, T): the true sources as estimates

    e, m = confidence_scores(clap, first[None], est, rate, prompts, w)
    assert np.allclose(m, clap_similarity(clap, first.expand(2, -1), prompts, rate), atol=1e-5)
    assert np.allclose(e, clap_similarity(clap, est[:, 0], prompts, rate), atol=1e-5)

    # Three windows, the last one silent: the mean over the first two. Channels are averaged.
    long = torch.cat([first, second, torch.zeros(w)])
    e3, m3 = confidence_scores(clap, long.expand(2, -1), 0.5 * long.expand(2, 2, -1), rate, prompts, w)
    expected = [(clap_similarity(clap, x.expand(2, -1), prompts, rate)) for x in (first, second)]
    assert np.allclose(m3, (expected[0] + expected[1]) / 2, atol=1e-5)
    halves = [clap_similarity(clap, 0.5 * x.expand(2, -1), prompts, rate) for x in (first, second)]
    assert np.allclose(e3, (halves[0] + halves[1]) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="2 estimates for 3 prompts"):
        confidence_scores(clap, first[None], est, rate, [*prompts, "tuba"], w)


@pytest.mark.slow
def test_threshold_is_the_5th_percentile_of_present_prompt_scores(smoke_study, tmp_path, capsys):
    out = tmp_path / "confidence.json"
    assert (
        main(
            [
                "confidence",
                "--profile",
                "smoke",
                "--sources",
                "2",
                "3",
                "--data-root",
                str(smoke_study.cache),
                "--clap-checkpoint",
                str(smoke_study.clap_checkpoint),
                "-o",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    record = json.loads(out.read_text())
    assert f"threshold {record['threshold']:.4f}" in capsys.readouterr().out

    # The same figures, computed independently with the study's reference-free metric.
    clap, p = smoke_study.clap(), smoke_study.profile
    classes = corpus_classes("instruments")
    scores = {"test": ([], []), "val": ([], [])}
    for split, (present, absent) in scores.items():
        for n in (2, 3):
            mix = smoke_study.testset(n, split)
            for k, labels in enumerate(mix.labels):
                sims = clap_similarity(clap, mix.mixtures[k].expand(len(classes), -1), classes, p.sample_rate)
                for c, s in zip(classes, sims):
                    (present if c in labels else absent).append(s)
    present, absent = (np.array(x) for x in scores["test"])
    threshold = record["threshold"]
    assert threshold == pytest.approx(np.quantile(present, 0.05), abs=1e-5)
    rates = record["rates"]
    assert (rates["n_present"], rates["n_absent"]) == (present.size, absent.size) == (6 * 5, 6 * (11 * 2 - 5))
    assert rates["warn_rate_present"] == pytest.approx((present < threshold).mean())
    assert rates["warn_rate_absent"] == pytest.approx((absent < threshold).mean())
    assert rates["auc"] == pytest.approx((present[:, None] > absent[None]).mean(), abs=1e-3)
    assert set(rates["by_sources"]) == {"2", "3"}
    held_present, held_absent = (np.array(x) for x in scores["val"])
    held = record["heldout"]
    assert held["split"] == "val" and held["n_present"] == held_present.size == 4 * 5
    assert held["warn_rate_absent"] == pytest.approx((held_absent < threshold).mean())
    assert record["clap"]["sha256"] == file_sha256(smoke_study.clap_checkpoint)
    assert record["quantile"] == 0.05 and record["profile"]["name"] == "smoke" and record["weaksep_version"]

    found, note = load_threshold(out, smoke_study.clap_checkpoint)
    assert found is not None and found.threshold == threshold and str(out) in note
    assert found.warns(threshold - 1e-6) and not found.warns(threshold)
    other = tmp_path / "other_clap.pt"
    other.write_bytes(b"another CLAP")
    none, note = load_threshold(out, other)
    assert none is None and "another CLAP" in note
    none, note = load_threshold(tmp_path / "missing.json", smoke_study.clap_checkpoint)
    assert none is None and "missing.json does not exist" in note and "weaksep confidence" in note
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_threshold(tmp_path / "missing.json", smoke_study.clap_checkpoint, required=True)
    (tmp_path / "bad.json").write_text(json.dumps({"threshold": 0.1}))
    with pytest.raises(ValueError, match="bad.json is not one written by weaksep.inference.confidence"):
        load_threshold(tmp_path / "bad.json", smoke_study.clap_checkpoint, required=True)
