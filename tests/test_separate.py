"""Separating long, resampled, stereo inputs: windows stitched without seams, lengths and channels kept;
many inputs in one call, the residual, the output folders and the scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from weaksep.inference.audio_files import (
    audio_extensions,
    expand_inputs,
    input_folder_names,
    output_paths,
    write_outputs,
)
from weaksep.inference.overlap_add import crossfade_window, overlap_add, window_count
from weaksep.inference.separate import separate_files
from weaksep.inference.waveform import LoadedSeparator, separate_waveform
from weaksep.method.model import Separator, SeparatorConfig

MODEL_RATE, WINDOW = 8000, 2048
D = 16


class StubClap:
    """Just what separate_waveform and the scores ask of a CLAP: fixed text embeddings, spectral audio ones."""

    embed_dim = D
    prompt_template = "The sound of {entity}"

    def embed_text(self, texts, template=True):
        g = torch.Generator().manual_seed(len(texts))
        return torch.nn.functional.normalize(torch.randn(len(texts), D, generator=g), dim=-1)

    def embed_audio(self, wav, sample_rate):
        bands = torch.fft.rfft(wav.float()).abs()[:, 1:].tensor_split(D, dim=-1)  # D bands of the spectrum
        return torch.nn.functional.normalize(torch.stack([b.mean(-1) for b in bands], -1) + 1e-6, dim=-1)

    def _device(self):
        return torch.device("cpu")


def _separator(identity: bool) -> Separator:
    torch.manual_seed(0)
    model = Separator(
        SeparatorConfig(
            n_fft=256, hop=64, channels=(4, 8), text_dim=D, text_state_dim=D, conditioning="head", head_channels=4
        )
    ).eval()
    if identity:  # every mask is sigmoid(100) = 1: the separator passes its input through
        with torch.no_grad():
            model.head_proj.weight.zero_()
            model.head_proj.bias.zero_()
            model.head_proj.bias[-1] = 100.0
    return model


def _stationary(n: int, rate: int, channels: int = 1) -> torch.Tensor:
    """A DC offset plus sines: any seam would show as a jump or dip."""
    t = torch.arange(n, dtype=torch.float64) / rate
    rows = [
        0.1 + 0.3 * torch.sin(2 * math.pi * (220 + 110 * c) * t) + 0.1 * torch.sin(2 * math.pi * 1000 * t)
        for c in range(channels)
    ]
    return torch.stack(rows).float()


def _boundary_samples(length: int, window: int, overlap: float) -> torch.Tensor:
    """Indices (in the unpadded signal) of every sample inside a crossfade or at a window edge."""
    ramp = round(overlap * window)
    hop = window - ramp
    idx = []
    for k in range(window_count(length, window, overlap)):
        start = k * hop - ramp
        idx += list(range(start, start + ramp)) + [start, start + window - 1]
        idx += list(range(start + window - ramp, start + window))
    idx = torch.tensor(sorted({i for i in idx if 0 <= i < length}))
    assert idx.numel() > 0
    return idx


@pytest.mark.parametrize("overlap", [0.5, 0.25])
def test_shifted_crossfade_windows_sum_to_one(overlap):
    ramp = round(overlap * WINDOW)
    w = crossfade_window(WINDOW, ramp).double()
    hop = WINDOW - ramp
    total = torch.zeros(hop * 6 + WINDOW, dtype=torch.float64)
    for k in range(7):
        total[k * hop : k * hop + WINDOW] += w
    inner = total[WINDOW:-WINDOW]  # where every sample is covered by all the windows it can be
    assert torch.allclose(inner, torch.ones_like(inner), atol=1e-6)
    if overlap == 0.5:  # a (symmetric, half-sample shifted) Hann window
        n = torch.arange(WINDOW, dtype=torch.float64)
        assert torch.allclose(w, torch.sin(math.pi * (n + 0.5) / WINDOW) ** 2, atol=1e-6)


@pytest.mark.parametrize("length", [1000, WINDOW, WINDOW + 1, 5 * WINDOW + 77])
@pytest.mark.parametrize("overlap", [0.5, 0.25, 0.0])
def test_overlap_add_of_the_identity_is_the_identity(length, overlap):
    x = _stationary(length, MODEL_RATE, channels=2) + 0.01 * torch.randn(2, length)
    seen = []

    def identity(chunk):
        seen.append(chunk.shape[0])
        return torch.stack([chunk, 2 * chunk], dim=1)  # P = 2 outputs

    y = overlap_add(x, identity, WINDOW, overlap, batch_size=3)
    assert y.shape == (2, 2, length)
    assert sum(seen) == 2 * window_count(length, WINDOW, overlap)
    assert (y[:, 0] - x).abs().max() < 1e-5
    assert (y[:, 1] - 2 * x).abs().max() < 1e-5


def test_identity_separator_leaves_a_stationary_signal_seamless():
    model, clap = _separator(identity=True), StubClap()
    n = 6 * WINDOW + 123
    x = _stationary(n, MODEL_RATE)
    y = separate_waveform(model, clap, x, MODEL_RATE, ["violin", "flute"], model_rate=MODEL_RATE, window=WINDOW)
    assert y.shape == (2, 1, n)
    edges = _boundary_samples(n, WINDOW, 0.5)
    assert (y[:, 0, edges] - x[0, edges]).abs().max() < 1e-4
    assert (y[:, 0] - x[0]).abs().max() < 1e-4
    # The jumps between neighbouring samples are those of the input: no click at a boundary.
    assert (y[0, 0].diff().abs().max() - x[0].diff().abs().max()).abs() < 1e-4


def test_a_seam_would_be_detected():
    """The seam test is sensitive: windows that do not sum to one leave a large error at the boundaries."""
    x = _stationary(6 * WINDOW, MODEL_RATE)
    ramp, hop = WINDOW // 4, WINDOW - WINDOW // 4
    w = torch.hann_window(WINDOW)  # sums to 1 at hop WINDOW/2, not at this hop
    broken = torch.zeros(hop * 8 + WINDOW)
    padded = torch.nn.functional.pad(x[0], (ramp, broken.numel() - ramp - x.shape[1]))
    for k in range(9):
        broken[k * hop : k * hop + WINDOW] += padded[k * hop : k * hop + WINDOW] * w
    assert (broken[ramp : ramp + x.shape[1]] - x[0]).abs().max() > 0.05


def test_44k_stereo_input_through_an_8k_model_keeps_rate_length_channels_and_has_no_seams():
    model, clap = _separator(identity=True), StubClap()
    rate = 44100
    n = int(1.9 * rate) + 7  # about 7 windows of 2048 samples at 8 kHz
    x = _stationary(n, rate, channels=2)
    y = separate_waveform(model, clap, x, rate, ["violin"], model_rate=MODEL_RATE, window=WINDOW)
    assert y.shape == (1, 2, n) and y.dtype == torch.float32
    # What an identity separator can give at most: the input band-limited to 4 kHz by the two resamplings.
    round_trip = AF.resample(AF.resample(x, rate, MODEL_RATE), MODEL_RATE, rate)[..., :n]
    inner = slice(rate // 50, n - rate // 50)  # the resampling filters' own edges excepted
    assert (y[0, :, inner] - round_trip[:, inner]).abs().max() < 1e-4
    assert (y[0, :, inner] - x[:, inner]).abs().max() < 1e-2  # all content is below 4 kHz
    assert torch.allclose(y[0, 1, inner], x[1, inner], atol=1e-2)  # the channels stay apart


def test_each_channel_is_separated_on_its_own():
    model, clap = _separator(identity=False), StubClap()
    rate = 22050
    n = rate  # 1 s: several windows at 8 kHz
    x = _stationary(n, rate, channels=2) * torch.tensor([[1.0], [0.3]])
    kw = dict(model_rate=MODEL_RATE, window=WINDOW, normalize=False)
    stereo = separate_waveform(model, clap, x, rate, ["a", "b"], **kw)
    left = separate_waveform(model, clap, x[0], rate, ["a", "b"], **kw)
    right = separate_waveform(model, clap, x[1], rate, ["a", "b"], **kw)
    assert stereo.shape == (2, 2, n) and left.shape == (2, 1, n)
    assert torch.allclose(stereo[:, :1], left, atol=1e-5)
    assert torch.allclose(stereo[:, 1:], right, atol=1e-5)
    assert not torch.allclose(stereo[0], stereo[1], atol=1e-3)  # two prompts, two different estimates


def test_normalising_the_level_is_undone_on_the_estimates():
    model, clap = _separator(identity=True), StubClap()
    x = 0.001 * _stationary(3 * WINDOW, MODEL_RATE)  # a quiet recording
    y = separate_waveform(model, clap, x, MODEL_RATE, ["violin"], model_rate=MODEL_RATE, window=WINDOW)
    assert (y[0] - x).abs().max() < 1e-6


def test_progress_bar_for_long_inputs_only(capsys):
    model, clap = _separator(identity=True), StubClap()
    kw = dict(model_rate=MODEL_RATE, window=WINDOW, progress=True)
    separate_waveform(model, clap, _stationary(WINDOW, MODEL_RATE), MODEL_RATE, ["violin"], **kw)
    assert "window" not in capsys.readouterr().err
    separate_waveform(model, clap, _stationary(8 * WINDOW, MODEL_RATE), MODEL_RATE, ["violin"], **kw)
    assert "window" in capsys.readouterr().err


def test_bad_prompts_and_waveforms_are_refused():
    model, clap = _separator(identity=True), StubClap()
    kw = dict(model_rate=MODEL_RATE, window=WINDOW)
    with pytest.raises(ValueError, match="prompt 2 is empty"):
        separate_waveform(model, clap, torch.zeros(1, 100), MODEL_RATE, ["violin", " "], **kw)
    with pytest.raises(ValueError, match="no prompt"):
        separate_waveform(model, clap, torch.zeros(1, 100), MODEL_RATE, [], **kw)
    with pytest.raises(ValueError, match="samples"):
        separate_waveform(model, clap, torch.zeros(1, 0), MODEL_RATE, ["violin"], **kw)


def test_outputs_are_written_all_or_none(tmp_path, monkeypatch):
    import soundfile as sf

    import weaksep.inference.audio_files as audio_files

    est = torch.zeros(2, 1, 100)
    out = tmp_path / "out"
    calls = []
    real_write = sf.write  # the first file is really written, then the disk "fills"

    def failing_write(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(path, *args, **kwargs)

    monkeypatch.setattr(audio_files.sf, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_outputs(est, 8000, [out / "a.wav", out / "b.wav"])
    assert len(calls) == 2 and not out.exists()
    monkeypatch.undo()
    paths = write_outputs(est, 8000, [out / "a.wav", out / "b.wav"])
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav"] == [p.name for p in paths]


def test_positional_call_with_the_default_window():
    """``make bench`` calls separate_waveform(model, clap, wav, rate, prompts, model_rate, progress)."""
    model, clap = _separator(identity=True), StubClap()
    x = _stationary(44100, 44100)
    y = separate_waveform(model, clap, x, 44100, ["violin"], MODEL_RATE, False)
    assert y.shape == (1, 1, 44100)
    assert (y[0, :, 1000:-1000] - x[:, 1000:-1000]).abs().max() < 1e-2


# --------------------------------------------------------------------------- many inputs
def _stub_separator(identity: bool = False) -> LoadedSeparator:
    return LoadedSeparator(_separator(identity), StubClap(), MODEL_RATE, WINDOW, {}, Path("stub.pt"), Path("no-clap"))


def _write(path: Path, seconds: float, rate: int, channels: int = 1, subtype: str = "PCM_16", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = _stationary(int(seconds * rate), rate, channels).T.numpy() * 0.5
    x += 0.01 * np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    sf.write(path, x, rate, subtype=subtype)
    return path


def test_folders_and_patterns_expand_to_every_sound_file_once(tmp_path):
    assert {"wav", "flac", "ogg", "aiff"} <= audio_extensions() and "raw" not in audio_extensions()
    a = _write(tmp_path / "in" / "a.wav", 0.1, 8000)
    b = _write(tmp_path / "in" / "deep" / "b.FLAC", 0.1, 8000, subtype="PCM_24")
    c = _write(tmp_path / "in" / "c.ogg", 0.1, 8000, subtype="VORBIS")
    (tmp_path / "in" / "notes.txt").write_text("not audio")
    _write(tmp_path / "in" / ".hidden" / "h.wav", 0.1, 8000)  # hidden: not the user's recordings
    _write(tmp_path / "in" / "._a.wav", 0.1, 8000)
    _write(tmp_path / "in" / "out" / "old" / "violin.wav", 0.1, 8000)  # a previous run's outputs
    files, problems = expand_inputs(
        [tmp_path / "in", str(tmp_path / "in" / "*.wav"), a], exclude=tmp_path / "in" / "out"
    )
    assert files == [a, c, b] and problems == []  # folder order (sorted), then the pattern's and a: seen already
    files, problems = expand_inputs(
        [str(tmp_path / "in" / "**" / "*.FLAC"), tmp_path / "nope.wav", str(tmp_path / "*.mp3")]
    )
    assert files == [b]
    assert len(problems) == 2
    assert "nope.wav does not exist" in problems[0] and "matches no file" in problems[1]
    (tmp_path / "empty").mkdir()
    assert "holds no sound file" in expand_inputs(tmp_path / "empty")[1][0]


def test_equal_stems_get_distinct_names_that_do_not_depend_on_order(tmp_path):
    paths = [
        tmp_path / "x" / "a" / "mix.wav",
        tmp_path / "y" / "a" / "mix.flac",
        tmp_path / "b" / "mix.wav",
        tmp_path / "b" / "mix.flac",
        tmp_path / "solo.wav",
        tmp_path / "c" / "Solo.wav",
        tmp_path / "scores.csv.wav",
    ]
    names = input_folder_names(paths)
    # One rule per group of equal stems: the fewest parent folders that tell all of them apart, else the extension.
    assert names == [
        "a__mix.wav",
        "a__mix.flac",
        "b__mix.wav",
        "b__mix.flac",
        f"{tmp_path.name}__solo",
        "c__Solo",
        f"{tmp_path.name}__scores.csv",
    ]
    assert input_folder_names(paths[::-1]) == names[::-1]
    assert input_folder_names(paths[:2]) == ["x__a__mix", "y__a__mix"]
    assert input_folder_names([tmp_path / "one" / "mix.wav", tmp_path / "two.wav"]) == ["mix", "two"]
    with pytest.raises(ValueError, match="twice"):
        input_folder_names([paths[0], paths[0]])


def test_residual_makes_the_outputs_add_back_up_to_the_input(tmp_path):
    src = _write(tmp_path / "in" / "song.wav", 1.3, 44100, channels=2)
    out = tmp_path / "out"
    scores = separate_files(src, ["violin", "flute"], out, _stub_separator(), residual=True, log=None)
    folder = out / "song"
    assert sorted(p.name for p in folder.iterdir()) == ["flute.wav", "residual.wav", "violin.wav"]
    x, rate = sf.read(src, dtype="float64", always_2d=True)
    total = np.zeros_like(x)
    for name in ("violin.wav", "flute.wav", "residual.wav"):
        info = sf.info(str(folder / name))
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (rate, len(x), 2, "FLOAT")
        total += sf.read(folder / name, dtype="float64", always_2d=True)[0]
    assert np.linalg.norm(total - x) / np.linalg.norm(x) < 1e-5
    est = sf.read(folder / "violin.wav", dtype="float64")[0]
    assert np.linalg.norm(est - x) / np.linalg.norm(x) > 0.1  # the residual is not trivially the input
    assert list(scores.columns) == ["input", "prompt", "output", "estimate_score", "mixture_score", "absent_warning"]
    assert scores["output"].tolist() == [str(folder / "violin.wav"), str(folder / "flute.wav")]
    assert scores["absent_warning"].isna().all()  # no threshold for this separator
    with pytest.raises(ValueError, match="residual"):
        output_paths(["violin", "Residual"], out, residual=True)


def test_a_bad_file_among_good_ones_is_skipped_in_one_line(tmp_path):
    good = [
        _write(tmp_path / "in" / "a" / "take.wav", 0.5, 22050),
        _write(tmp_path / "in" / "b" / "take.wav", 0.4, 8000),
        _write(tmp_path / "in" / "short.wav", 2 / 44100, 44100),
    ]  # two samples: under one period at 8 kHz
    (tmp_path / "in" / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    sf.write(tmp_path / "in" / "empty.wav", np.zeros((0, 1)), 8000)
    sf.write(tmp_path / "in" / "nan.wav", np.full((100, 1), np.nan), 8000, subtype="FLOAT")
    messages, lines = [], []
    scores = separate_files(
        tmp_path / "in", ["violin"], tmp_path / "out", _stub_separator(), log=messages.append, echo=lines.append
    )
    skipped = [m for m in messages if m.startswith("skipped: ")]
    assert len(skipped) == 3 and all("\n" not in m for m in skipped)
    assert any("corrupt.wav" in m for m in skipped) and any("empty.wav" in m and "zero length" in m for m in skipped)
    assert any("nan.wav" in m and "NaN" in m for m in skipped)
    assert scores.attrs["skipped"] == [m[len("skipped: ") :] for m in skipped]
    assert sorted(scores["input"]) == sorted(str(p) for p in good)
    for p in good:
        info = sf.info(str(tmp_path / "out" / input_folder_names(good)[good.index(p)] / "violin.wav"))
        assert (info.samplerate, info.frames) == (sf.info(str(p)).samplerate, sf.info(str(p)).frames)
    assert sorted(d.name for d in (tmp_path / "out").iterdir()) == ["a__take", "b__take", "scores.csv", "short"]
    saved = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert saved[["input", "prompt", "output"]].equals(scores[["input", "prompt", "output"]])
    assert np.allclose(saved["mixture_score"], scores["mixture_score"])
    assert len(lines) == 3 and all("violin.wav" in line for line in lines)


def test_nothing_readable_is_an_error_and_writes_nothing(tmp_path):
    (tmp_path / "bad.wav").write_text("not audio")
    with pytest.raises(ValueError, match="bad.wav"):
        separate_files(tmp_path / "bad.wav", ["violin"], tmp_path / "out", _stub_separator(), log=None)
    messages = []
    with pytest.raises(ValueError, match="all 2 inputs were skipped"):
        separate_files(
            [tmp_path / "bad.wav", tmp_path / "gone.wav"],
            ["violin"],
            tmp_path / "out",
            _stub_separator(),
            log=messages.append,
        )
    assert len(messages) == 2 and not (tmp_path / "out").exists()
    sf.write(tmp_path / "nan.wav", np.full((100, 1), np.nan), 8000, subtype="FLOAT")  # readable header, bad samples
    messages = []
    with pytest.raises(ValueError, match="all 2 inputs were skipped"):
        separate_files(
            [tmp_path / "nan.wav", tmp_path / "bad.wav"],
            ["violin"],
            tmp_path / "out",
            _stub_separator(),
            log=messages.append,
        )
    assert [m.split(":")[0] for m in messages] == ["skipped", "skipped"] and not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="nan.wav contains NaN"):
        separate_files(tmp_path / "nan.wav", ["violin"], tmp_path / "out", _stub_separator(), log=messages.append)


def test_benchmark_folder_on_two_short_files(smoke_study):
    from weaksep.tools.bench import benchmark_folder

    model = smoke_study.train("sup", 2, steps=5)  # the test_cli checkpoint, cached
    r = benchmark_folder(model, n_files=2, seconds=3.0, sample_rate=22050, channels=2)
    assert r["files"] == 2 and r["audio_seconds"] == pytest.approx(6.0)
    assert r["audio_seconds_per_second"] == pytest.approx(r["audio_seconds"] / r["wall_seconds"])
    assert 0 < r["model_load_seconds"] < r["wall_seconds"] and 0 < r["model_load_share"] < 1


def test_the_recorded_clap_is_found_from_a_portable_path(tmp_path, monkeypatch):
    from weaksep.inference.waveform import recorded_clap_paths

    monkeypatch.setenv("WEAKSEP_CACHE", str(tmp_path / "default_cache"))
    cache = tmp_path / "other_cache"  # a study run with another data root
    ckpt = cache / "smoke" / "runs" / "weak-n2" / "model.pt"
    clap = cache / "smoke" / "clap" / "proxy.pt"

    def first_file(recorded):
        return next((p for p in recorded_clap_paths(recorded, ckpt, "smoke", tmp_path / "repo") if p.is_file()), None)

    for f in (ckpt, clap, tmp_path / "repo" / "results" / "models" / "clap_proxy.pt"):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    assert first_file("<cache>/smoke/clap/proxy.pt") == clap
    assert first_file("proxy.pt") == clap  # a bare name: the CLAP was outside the default cache
    assert (
        first_file("<repo>/results/models/clap_proxy.pt") == tmp_path / "repo" / "results" / "models" / "clap_proxy.pt"
    )
    assert first_file(str(clap)) == clap
    assert first_file("<cache>/smoke/clap/gone.pt") is None
    # the cache the run was trained in comes first, the default cache last
    found = recorded_clap_paths("<cache>/q/c.pt", ckpt, None, tmp_path)
    assert found[-2] == tmp_path / "default_cache" / "q" / "c.pt"
    assert found[-1] == ckpt.parent / "c.pt"  # a dataset's own CLAP committed beside the model
