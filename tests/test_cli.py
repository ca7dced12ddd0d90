"""The ``weaksep`` command end to end: separate files a test makes, refuse bad input, train, evaluate."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from weaksep import cli
from weaksep.inference.confidence import write_confidence
from weaksep.inference.waveform import load_for_inference
from weaksep.method.model import Separator, SeparatorConfig
from weaksep.paths import file_sha256
from weaksep.training.checkpoint import load_separator, read_checkpoint, save_checkpoint

RATE = 44100


@pytest.fixture(scope="module")
def checkpoint(smoke_study):
    return smoke_study.train("sup", 2, steps=5)


@pytest.fixture(scope="module")
def stereo_flac(tmp_path_factory):
    """3.1 s of stereo 44.1 kHz FLAC (about five model windows): a plucked tone left, a sustained one right."""
    t = np.arange(int(3.1 * RATE) + 11) / RATE
    left = 0.3 * np.sin(2 * np.pi * 392 * t) * np.exp(-3 * (t % 0.5))
    right = 0.2 * np.sin(2 * np.pi * 523.25 * t) + 0.05 * np.sin(2 * np.pi * 1046.5 * t)
    path = tmp_path_factory.mktemp("audio") / "mix.flac"
    sf.write(path, np.stack([left, right], 1), RATE, subtype="PCM_24")
    return path


def _outputs(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.slow
def test_separate_in_process_and_as_python_m_weaksep(checkpoint, stereo_flac, tmp_path):
    info = sf.info(str(stereo_flac))
    prompts = ["violin", "a bowed string instrument"]
    args = [str(stereo_flac), *sum((["--prompt", p] for p in prompts), []), "--checkpoint", str(checkpoint)]
    out_a = tmp_path / "a"
    assert cli.main(["separate", *args, "-o", str(out_a), "--no-progress"]) == 0
    assert _outputs(out_a) == ["mix", "scores.csv"]  # one folder per input, named after its stem
    assert _outputs(out_a / "mix") == ["a_bowed_string_instrument.wav", "violin.wav"]
    est = {}
    for name in _outputs(out_a / "mix"):
        out_info = sf.info(str(out_a / "mix" / name))
        assert (out_info.samplerate, out_info.frames, out_info.channels) == (RATE, info.frames, 2)
        est[name], _ = sf.read(str(out_a / "mix" / name), dtype="float32")
        assert np.isfinite(est[name]).all() and np.abs(est[name]).max() > 1e-4
    assert not np.allclose(est["violin.wav"], est["a_bowed_string_instrument.wav"], atol=1e-4)

    out_b = tmp_path / "b"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "weaksep", "separate", *args, "-o", str(out_b)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "violin.wav" in proc.stdout
    for name, ref in est.items():  # the same computation: the same samples
        again, rate = sf.read(str(out_b / "mix" / name), dtype="float32")
        assert rate == RATE and np.abs(again - ref).max() < 1e-5


def test_mono_wav_of_another_rate_and_shorter_than_a_window(checkpoint, tmp_path):
    path = tmp_path / "short.wav"
    n = 12_345  # 0.56 s at 22.05 kHz: less than one 8192-sample window at 8 kHz
    sf.write(path, 0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 22050), 22050, subtype="PCM_16")
    out = tmp_path / "out"
    assert cli.main(["separate", str(path), "-p", "flute", "-c", str(checkpoint), "-o", str(out)]) == 0
    info = sf.info(str(out / "short" / "flute.wav"))
    assert (info.samplerate, info.frames, info.channels) == (22050, n, 1)


def _write_other_size_checkpoint(checkpoint, path):
    """A valid separator checkpoint whose text embedding dimension is not the CLAP's."""
    state = read_checkpoint(checkpoint)
    cfg = SeparatorConfig.from_dict({**state["model_config"], "text_dim": 128})
    # Moved out of its run folder, the checkpoint names its CLAP by an absolute path (as older runs did).
    clap = str(load_for_inference(checkpoint).clap_path)
    run_config = {**state["run_config"], "clap": {**state["run_config"]["clap"], "checkpoint": clap}}
    save_checkpoint(path, Separator(cfg), run_config, 1)


def _bad_inputs(tmp_path, checkpoint, stereo_flac):
    """(name, argv without -o, what the message must name)."""
    good = ["-p", "violin", "-c", str(checkpoint)]
    (tmp_path / "notaudio.wav").write_text("this is not a sound file\n")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 2)), RATE)
    sf.write(tmp_path / "nan.wav", np.full((500, 1), np.nan), RATE, subtype="FLOAT")  # found only when read whole
    (tmp_path / "notackpt.pt").write_bytes(b"\x00garbage" * 10)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    _write_other_size_checkpoint(checkpoint, tmp_path / "other_size.pt")
    state = read_checkpoint(checkpoint)
    lost_clap = {**state["run_config"], "clap": {**state["run_config"]["clap"], "checkpoint": "/gone/clap.pt"}}
    save_checkpoint(tmp_path / "lost_clap.pt", load_separator(checkpoint)[0], lost_clap, 5)
    missing = tmp_path / "missing.flac"
    (tmp_path / "empty_folder").mkdir()
    return [
        ("missing audio", [str(missing), *good], str(missing)),
        ("unreadable audio", [str(tmp_path / "notaudio.wav"), *good], "notaudio.wav"),
        ("zero-length audio", [str(tmp_path / "empty.wav"), *good], "zero length"),
        ("NaN audio", [str(tmp_path / "nan.wav"), *good], "NaN"),
        ("no audio in a folder", [str(tmp_path / "empty_folder"), *good], "holds no sound file"),
        ("pattern matching nothing", [str(tmp_path / "*.mp3"), *good], "matches no file"),
        ("empty prompt", [str(stereo_flac), "-p", "violin", "-p", "", "-c", str(checkpoint)], "prompt 2 is empty"),
        ("blank prompt", [str(stereo_flac), "-p", "   ", "-c", str(checkpoint)], "prompt 1 is empty"),
        ("same file twice", [str(stereo_flac), "-p", "Violin", "-p", "violin!", "-c", str(checkpoint)], "violin.wav"),
        ("missing checkpoint", [str(stereo_flac), "-p", "violin", "-c", str(tmp_path / "nope.pt")], "nope.pt"),
        ("not a torch file", [str(stereo_flac), "-p", "violin", "-c", str(tmp_path / "notackpt.pt")], "notackpt.pt"),
        (
            "torch file, not a checkpoint",
            [str(stereo_flac), "-p", "violin", "-c", str(tmp_path / "other.pt")],
            "not a weaksep separator checkpoint",
        ),
        (
            "other model size",
            [str(stereo_flac), "-p", "violin", "-c", str(tmp_path / "other_size.pt")],
            "dimension 128",
        ),
        ("CLAP not found", [str(stereo_flac), "-p", "violin", "-c", str(tmp_path / "lost_clap.pt")], "/gone/clap.pt"),
        (
            "not the expected profile",
            [str(stereo_flac), *good, "--expect-profile", "quick"],
            "not a quick-profile model",
        ),
        ("bad overlap", [str(stereo_flac), *good, "--overlap", "0.9"], "--overlap"),
    ]


def test_bad_input_gives_one_line_exit_2_and_writes_nothing(checkpoint, stereo_flac, tmp_path, capsys, monkeypatch):
    import weaksep.paths

    monkeypatch.setattr(weaksep.paths, "REPO_ROOT", tmp_path)  # no results/models/clap_proxy.pt to fall back on
    for name, argv, named in _bad_inputs(tmp_path, checkpoint, stereo_flac):
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        status = cli.main(["separate", *argv, "-o", str(out), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert status == 2, name
        assert err.startswith("weaksep: error: ") and "\n" not in err, (name, err)
        assert named in err, (name, err)
        assert not out.exists(), name


def test_existing_output_folder_is_left_alone_on_error(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert (
        cli.main(["separate", str(tmp_path / "missing.wav"), "-p", "violin", "-c", str(checkpoint), "-o", str(out)])
        == 2
    )
    assert _outputs(out) == ["keep.txt"]


def test_without_checkpoint_says_how_to_make_one(stereo_flac, tmp_path, monkeypatch, capsys):
    import weaksep.paths

    monkeypatch.setattr(weaksep.paths, "REPO_ROOT", tmp_path)  # a checkout without results/models/weak_n2.pt
    assert cli.main(["separate", str(stereo_flac), "-p", "violin", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "weak_n2.pt" in err and "make reproduce" in err and "weaksep train --regime weak" in err
    assert not (tmp_path / "out").exists()


def test_default_checkpoint_and_clap_from_results_models(smoke_study, checkpoint, stereo_flac, tmp_path, monkeypatch):
    """On another machine the run config's CLAP path is gone: results/models/clap_proxy.pt is used."""
    import weaksep.paths

    models = tmp_path / "results" / "models"
    models.mkdir(parents=True)
    state = read_checkpoint(checkpoint)
    run_config = {**state["run_config"], "clap": {**state["run_config"]["clap"], "checkpoint": "/elsewhere/clap.pt"}}
    save_checkpoint(models / "weak_n2.pt", load_separator(checkpoint)[0], run_config, 5)
    shutil.copyfile(smoke_study.clap_checkpoint, models / "clap_proxy.pt")
    monkeypatch.setattr(weaksep.paths, "REPO_ROOT", tmp_path)
    sep = load_for_inference(models / "weak_n2.pt")
    assert sep.clap_path == models / "clap_proxy.pt"
    assert cli.main(["separate", str(stereo_flac), "-p", "cello", "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    assert _outputs(tmp_path / "out" / "mix") == ["cello.wav"]


def test_residual_outputs_add_back_up_to_the_input(checkpoint, stereo_flac, tmp_path):
    out = tmp_path / "out"
    assert (
        cli.main(
            [
                "separate",
                str(stereo_flac),
                "-p",
                "violin",
                "-p",
                "cello",
                "--residual",
                "-c",
                str(checkpoint),
                "-o",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert _outputs(out / "mix") == ["cello.wav", "residual.wav", "violin.wav"]
    x, rate = sf.read(str(stereo_flac), dtype="float64", always_2d=True)
    total = np.zeros_like(x)
    for name in _outputs(out / "mix"):
        y, r = sf.read(str(out / "mix" / name), dtype="float64", always_2d=True)
        assert (r, y.shape) == (rate, x.shape) and sf.info(str(out / "mix" / name)).subtype == "FLOAT"
        total += y
    assert np.linalg.norm(total - x) / np.linalg.norm(x) < 1e-5
    assert pd.read_csv(out / "scores.csv")["prompt"].tolist() == ["violin", "cello"]  # the residual has no prompt


def test_several_inputs_one_model_load_bad_ones_skipped(checkpoint, stereo_flac, tmp_path, capsys, monkeypatch):
    import weaksep.inference.separate

    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    shutil.copyfile(stereo_flac, src / "a" / "mix.flac")
    sf.write(src / "b" / "mix.wav", 0.1 * np.sin(np.arange(9000) / 7.0), 16000, subtype="PCM_16")
    (src / "b" / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    extra = tmp_path / "extra"
    extra.mkdir()
    sf.write(extra / "tone.ogg", 0.1 * np.sin(np.arange(8000) / 5.0), 8000, subtype="VORBIS")
    loads = []
    real_load = weaksep.inference.separate.load_for_inference
    monkeypatch.setattr(
        weaksep.inference.separate, "load_for_inference", lambda *a, **k: loads.append(a) or real_load(*a, **k)
    )
    monkeypatch.setenv("WEAKSEP_RESULTS", str(tmp_path / "results"))  # no confidence.json there
    out = tmp_path / "out"
    status = cli.main(
        [
            "separate",
            str(src),
            str(extra / "*.ogg"),
            str(tmp_path / "gone.wav"),
            "-p",
            "violin",
            "-p",
            "flute",
            "-c",
            str(checkpoint),
            "-o",
            str(out),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert status == 2  # something was skipped; the rest was written
    assert len(loads) == 1
    skipped = [line for line in captured.err.splitlines() if line.startswith("weaksep: skipped: ")]
    assert len(skipped) == 2 and "corrupt.wav" in skipped[0] + skipped[1] and "gone.wav" in skipped[0] + skipped[1]
    assert _outputs(out) == ["a__mix", "b__mix", "scores.csv", "tone"]
    assert all(_outputs(out / d) == ["flute.wav", "violin.wav"] for d in ("a__mix", "b__mix", "tone"))
    assert sf.info(str(out / "b__mix" / "violin.wav")).samplerate == 16000
    rows = pd.read_csv(out / "scores.csv")
    assert list(rows.columns) == ["input", "prompt", "output", "estimate_score", "mixture_score", "absent_warning"]
    assert len(rows) == 3 * 2 and rows["absent_warning"].isna().all()
    assert rows["estimate_score"].between(-1, 1).all() and rows["mixture_score"].between(-1, 1).all()
    notes = [line for line in captured.err.splitlines() if "no absent-sound warnings" in line]
    assert len(notes) == 1 and "results/smoke/confidence.json does not exist" in notes[0]
    for _, row in rows.iterrows():  # every output is printed with its scores
        assert (
            f"{row['output']}  (CLAP score {row['estimate_score']:.3f}; mixture {row['mixture_score']:.3f})"
            in captured.out
        )


def _confidence_file(path, clap_path, threshold):
    write_confidence(
        {
            "threshold": threshold,
            "quantile": 0.05,
            "clap": {"sha256": file_sha256(clap_path)},
            "rates": {"warn_rate_present": 0.05, "warn_rate_absent": 0.6},
        },
        path,
    )
    return path


def test_absent_warnings_only_with_a_threshold_of_the_same_clap(
    smoke_study, checkpoint, stereo_flac, tmp_path, capsys, monkeypatch
):
    args = ["separate", str(stereo_flac), "-p", "violin", "-p", "tuba", "-c", str(checkpoint), "--no-progress"]
    clap = smoke_study.clap_checkpoint
    # The default place: confidence.json in the results folder of the checkpoint's profile (smoke).
    monkeypatch.setenv("WEAKSEP_RESULTS", str(tmp_path / "results"))
    _confidence_file(tmp_path / "results" / "smoke" / "confidence.json", clap, 2.0)  # above any cosine: warns
    assert cli.main([*args, "-o", str(tmp_path / "warned")]) == 0
    err = capsys.readouterr().err
    assert [line.split("'")[1] for line in err.splitlines() if "may be absent" in line] == ["violin", "tuba"]
    assert all(line.startswith("weaksep: warning: ") for line in err.splitlines() if "may be absent" in line)
    assert pd.read_csv(tmp_path / "warned" / "scores.csv")["absent_warning"].tolist() == [True, True]

    _confidence_file(tmp_path / "low.json", clap, -2.0)
    assert cli.main([*args, "-o", str(tmp_path / "fine"), "--confidence", str(tmp_path / "low.json")]) == 0
    assert "may be absent" not in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "fine" / "scores.csv")["absent_warning"].tolist() == [False, False]

    _confidence_file(tmp_path / "other.json", tmp_path / "low.json", 2.0)  # measured with another file
    assert cli.main([*args, "-o", str(tmp_path / "other"), "--confidence", str(tmp_path / "other.json")]) == 0
    err = capsys.readouterr().err
    assert "may be absent" not in err and "another CLAP" in err
    assert pd.read_csv(tmp_path / "other" / "scores.csv")["absent_warning"].isna().all()

    (tmp_path / "broken.json").write_text("{")  # a file the user names must be readable
    assert cli.main([*args, "-o", str(tmp_path / "broken"), "--confidence", str(tmp_path / "broken.json")]) == 2
    assert "broken.json" in capsys.readouterr().err and not (tmp_path / "broken").exists()


VERBS = {
    "separate",
    "confidence",
    "train",
    "evaluate",
    "data",
    "figures",
    "collapse-progress",
    "bench",
    "bench-step",
    "bench-data",
    "gpu-check",
    "budget",
}


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subs[0].choices) if subs else {}


def test_every_option_of_every_subcommand_is_explained(capsys):
    assert set(_verbs(cli.build_parser())) == VERBS
    assert set(_verbs(_verbs(cli.build_parser())["data"])) == {"render", "prepare", "recorded", "fixture"}
    assert cli.main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(f"    {verb} " in listed or f"    {verb}\n" in listed for verb in VERBS), listed
    todo = [([name], sub) for name, sub in _verbs(cli.build_parser()).items()]
    while todo:
        words, parser = todo.pop()
        for action in parser._actions:
            assert action.help and action.help.strip(), (
                f"weaksep {' '.join(words)} {action.option_strings or action.dest}"
            )
        assert cli.main([*words, "--help"]) == 0
        todo += [([*words, name], sub) for name, sub in _verbs(parser).items()]


@pytest.mark.slow
def test_train_and_evaluate_front_ends(smoke_study, checkpoint, tmp_path, capsys):
    run = tmp_path / "run"
    status = cli.main(
        [
            "train",
            "--regime",
            "sup",
            "--sources",
            "2",
            "--profile",
            "smoke",
            "--out",
            str(run),
            "--data-root",
            str(smoke_study.cache),
            "--clap-checkpoint",
            str(smoke_study.clap_checkpoint),
            "--steps",
            "2",
            "--no-progress",
        ]
    )
    assert status == 0 and read_checkpoint(run / "model.pt")["step"] == 2
    # validated at its end (step 2): the chosen model is the best validation checkpoint
    assert f"model: {run / 'best.pt'}" in capsys.readouterr().out and (run / "val.csv").exists()
    again = [
        "train",
        "--regime",
        "weak",
        "--profile",
        "smoke",
        "--out",
        str(run),
        "--data-root",
        str(smoke_study.cache),
        "--clap-checkpoint",
        str(smoke_study.clap_checkpoint),
        "--steps",
        "2",
    ]
    assert cli.main(again) == 2  # the folder holds another config's finished run
    assert "another config" in capsys.readouterr().err

    csv = tmp_path / "rows.csv"
    status = cli.main(
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--sources",
            "2",
            "--data-root",
            str(smoke_study.cache),
            "-o",
            str(csv),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert "SDR" in printed and "SDRi" in printed and "SI-SDR" in printed
    rows = pd.read_csv(csv)
    n_queries = smoke_study.profile.n_test_mixtures * 2
    assert (rows["run"] == "model").sum() == n_queries and (rows["run"] == "mixture").sum() == n_queries
    model_line = next(line.split() for line in printed.splitlines() if line.startswith("model"))
    assert float(model_line[1]) == pytest.approx(rows.loc[rows["run"] == "model", "sdr"].mean(), abs=0.006)
    assert (
        cli.main(
            [
                "evaluate",
                "--checkpoint",
                str(checkpoint),
                "--sources",
                "2",
                "--profile",
                "quick",
                "--data-root",
                str(smoke_study.cache),
            ]
        )
        == 2
    )
    assert "another scale" in capsys.readouterr().err


def test_default_separator_is_the_one_notebook_09_names_and_instruments_one_flag_away(
    smoke_study, checkpoint, stereo_flac, tmp_path, monkeypatch
):
    """Without -c, `separate` uses results/models/default_separator.json's model (its own CLAP, found
    beside it under its cache name); --instruments uses weak_n2.pt with clap_proxy.pt."""
    import json

    import weaksep.paths
    from weaksep.inference.waveform import default_checkpoint

    models = tmp_path / "results" / "models"
    models.mkdir(parents=True)
    state = read_checkpoint(checkpoint)
    clap_name = "proxy-v2-abc-data0123.pt"
    recorded = {
        **state["run_config"],
        "clap": {**state["run_config"]["clap"], "checkpoint": f"<cache>/gone/{clap_name}"},
    }
    save_checkpoint(models / "sup_n2_recorded.pt", load_separator(checkpoint)[0], recorded, 5)
    shutil.copyfile(smoke_study.clap_checkpoint, models / clap_name)
    instruments = {**state["run_config"], "clap": {**state["run_config"]["clap"], "checkpoint": "/elsewhere/clap.pt"}}
    save_checkpoint(models / "weak_n2.pt", load_separator(checkpoint)[0], instruments, 5)
    shutil.copyfile(smoke_study.clap_checkpoint, models / "clap_proxy.pt")
    (models / "default_separator.json").write_text(json.dumps({"model": "sup_n2_recorded.pt"}))
    monkeypatch.setattr(weaksep.paths, "REPO_ROOT", tmp_path)
    assert default_checkpoint() == models / "sup_n2_recorded.pt"
    assert default_checkpoint(instruments=True) == models / "weak_n2.pt"
    assert load_for_inference(default_checkpoint()).clap_path == models / clap_name
    for flags, out in (([], "rec"), (["--instruments"], "inst")):
        args = ["separate", str(stereo_flac), "-p", "cello", "-o", str(tmp_path / out), "--no-progress", *flags]
        assert cli.main(args) == 0
        assert _outputs(tmp_path / out / "mix") == ["cello.wav"]
