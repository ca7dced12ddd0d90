"""Separating long, resampled, stereo inputs: windows stitched without seams, lengths and channels kept."""
from __future__ import annotations

import math

import pytest
import torch
import torchaudio.functional as AF

from weaksep.model import Separator, SeparatorConfig
from weaksep.separate import crossfade_window, overlap_add, separate_waveform, window_count, write_outputs

MODEL_RATE, WINDOW = 8000, 2048
D = 16


class StubClap:
    """Just what separate_waveform asks of a CLAP: fixed text embeddings."""

    embed_dim = D

    def embed_text(self, texts, template=True):
        g = torch.Generator().manual_seed(len(texts))
        return torch.nn.functional.normalize(torch.randn(len(texts), D, generator=g), dim=-1)


def _separator(identity: bool) -> Separator:
    torch.manual_seed(0)
    model = Separator(SeparatorConfig(n_fft=256, hop=64, channels=(4, 8), text_dim=D, text_state_dim=D,
                                      conditioning="head", head_channels=4)).eval()
    if identity:  # every mask is sigmoid(100) = 1: the separator passes its input through
        with torch.no_grad():
            model.head_proj.weight.zero_()
            model.head_proj.bias.zero_()
            model.head_proj.bias[-1] = 100.0
    return model


def _stationary(n: int, rate: int, channels: int = 1) -> torch.Tensor:
    """A DC offset plus sines: any seam would show as a jump or dip."""
    t = torch.arange(n, dtype=torch.float64) / rate
    rows = [0.1 + 0.3 * torch.sin(2 * math.pi * (220 + 110 * c) * t) + 0.1 * torch.sin(2 * math.pi * 1000 * t)
            for c in range(channels)]
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
        total[k * hop:k * hop + WINDOW] += w
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
        broken[k * hop:k * hop + WINDOW] += padded[k * hop:k * hop + WINDOW] * w
    assert (broken[ramp:ramp + x.shape[1]] - x[0]).abs().max() > 0.05


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

    import weaksep.separate as separate

    est = torch.zeros(2, 1, 100)
    out = tmp_path / "out"
    calls = []

    def failing_write(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        sf.write(path, *args, **kwargs)

    monkeypatch.setattr(separate.sf, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_outputs(est, 8000, [out / "a.wav", out / "b.wav"])
    assert not out.exists()
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
