"""Real-dataset manifests: formats, mono mix-down, resampling, crop/pad and bad rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from weaksep.data import ManifestError, load_manifest

SR, T = 8000, 4000


def _tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


@pytest.fixture
def fixture_dir(tmp_path):
    """Clips in several formats: wav at the study rate, flac, stereo, another rate, short, long."""
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "a.wav", _tone(440, 0.5, SR), SR, subtype="PCM_16")
    sf.write(audio / "b.flac", _tone(300, 0.6, SR), SR)
    left, right = _tone(200, 0.5, SR, 0.4), _tone(500, 0.5, SR, 0.2)
    sf.write(audio / "stereo.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    sf.write(audio / "hi.wav", _tone(1000, 0.5, 22050), 22050, subtype="FLOAT")
    sf.write(audio / "short.ogg", _tone(600, 0.2, SR), SR)
    sf.write(tmp_path / "abs.wav", _tone(700, 0.6, SR), SR, subtype="FLOAT")
    sf.write(audio / "silent.wav", np.zeros(4000, np.float32), SR)
    sf.write(audio / "empty.wav", np.zeros(0, np.float32), SR)
    (audio / "garbage.wav").write_bytes(b"this is not audio at all" * 10)
    return tmp_path


def _write(path, text):
    path.write_text(text)
    return path


def test_label_manifest_formats_and_conversion(fixture_dir):
    csv_path = _write(
        fixture_dir / "m.csv",
        "path,label\n"
        "audio/a.wav,violin\n"
        "audio/b.flac,flute\n"
        "audio/stereo.wav,cello\n"
        "audio/hi.wav,flute\n"
        "audio/short.ogg,violin\n"
        f"{fixture_dir / 'abs.wav'},cello\n",
    )
    clips = load_manifest(csv_path, SR, T)
    assert clips.audio.shape == (6, T) and clips.audio.dtype == torch.float32
    assert clips.labels == ["violin", "flute", "cello", "flute", "violin", "cello"]
    assert clips.classes == ["cello", "flute", "violin"]
    assert clips.label_ids.tolist() == [2, 1, 0, 1, 2, 0]
    assert clips.rows == [2, 3, 4, 5, 6, 7] and clips.skipped == []
    # WAV at the study rate: the samples themselves (PCM_16 quantisation), cropped.
    assert torch.allclose(clips.audio[0], torch.from_numpy(_tone(440, 0.5, SR)[:T]), atol=1e-4)
    # Stereo: the mean of the channels.
    mono = (_tone(200, 0.5, SR, 0.4) + _tone(500, 0.5, SR, 0.2)) / 2
    assert torch.allclose(clips.audio[2], torch.from_numpy(mono[:T]), atol=1e-6)
    # Other rate: resampled with torchaudio; compare with an independent resampling.
    ref = AF.resample(torch.from_numpy(_tone(1000, 0.5, 22050)), 22050, SR)[:T]
    assert torch.allclose(clips.audio[3], ref, atol=1e-5)
    spectrum = torch.fft.rfft(clips.audio[3]).abs()
    assert abs(int(spectrum.argmax()) * SR / T - 1000) < 5  # still a 1 kHz tone
    # Short clip: padded with zeros at the end.
    assert float(clips.audio[4, 1600:].abs().max()) == 0.0 and float(clips.audio[4, :1600].abs().max()) > 0.3


def test_caption_manifest(fixture_dir):
    csv_path = _write(
        fixture_dir / "c.csv",
        'path,caption\naudio/a.wav,"A bird tweets, then a telephone rings"\naudio/b.flac,Applause followed by waves\n',
    )
    clips = load_manifest(csv_path, SR, T, kind="caption")
    assert clips.kind == "caption" and clips.captions == clips.labels
    assert clips.labels[0] == "A bird tweets, then a telephone rings"
    assert clips.entities == [["a bird tweets", "a telephone rings"], ["applause", "waves"]]


def test_classes_fix_label_ids(fixture_dir):
    csv_path = _write(fixture_dir / "m.csv", "path,label\naudio/a.wav,violin\n")
    clips = load_manifest(csv_path, SR, T, classes=["cello", "flute", "violin", "xylophone"])
    assert clips.classes == ["cello", "flute", "violin", "xylophone"] and clips.label_ids.tolist() == [2]


BAD_ROWS = [
    ("audio/missing.wav,violin", r"line 3: audio file .*missing\.wav does not exist"),
    ("audio/garbage.wav,violin", r"line 3: audio file .*garbage\.wav is not readable"),
    ("audio/empty.wav,violin", r"line 3: audio file .*empty\.wav has zero length"),
    ("audio/silent.wav,violin", r"line 3: audio file .*silent\.wav is silent"),
    ("audio/b.flac,", r"line 3: has an empty label \(file audio/b\.flac\)"),
    ("audio/b.flac,banjo", r"line 3: label 'banjo' of audio/b\.flac is not one of the classes"),
    ("audio/b.flac,violin,extra", r"line 3: has 3 column\(s\)"),
    ("audio/b.flac", r"line 3: has 1 column\(s\)"),
]


@pytest.mark.parametrize("row,message", BAD_ROWS)
def test_bad_row_stops_with_a_clear_error(fixture_dir, row, message):
    csv_path = _write(fixture_dir / "bad.csv", f"path,label\naudio/a.wav,violin\n{row}\n")
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(csv_path, SR, T, classes=["violin", "flute"])
    assert "bad.csv" in str(info.value)


def test_empty_caption_is_an_error(fixture_dir):
    csv_path = _write(fixture_dir / "c.csv", 'path,caption\naudio/a.wav,"  "\n')
    with pytest.raises(ManifestError, match="line 2: has an empty caption"):
        load_manifest(csv_path, SR, T, kind="caption")


def test_skip_bad_reports_every_skipped_row(fixture_dir):
    rows = "\n".join(r for r, _ in BAD_ROWS)
    csv_path = _write(fixture_dir / "mixed.csv", f"path,label\naudio/a.wav,violin\n{rows}\naudio/b.flac,flute\n")
    with pytest.warns(UserWarning, match=f"skipped {len(BAD_ROWS)} bad row"):
        clips = load_manifest(csv_path, SR, T, classes=["violin", "flute"], skip_bad=True)
    assert clips.labels == ["violin", "flute"] and clips.rows == [2, 3 + len(BAD_ROWS)]
    assert [line for line, _ in clips.skipped] == list(range(3, 3 + len(BAD_ROWS)))
    assert "does not exist" in clips.skipped[0][1] and "silent" in clips.skipped[3][1]


def test_malformed_manifests(fixture_dir):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_manifest(fixture_dir / "nope.csv", SR, T)
    with pytest.raises(ManifestError, match=r"header is \['file', 'label'\], expected \['path', 'label'\]"):
        load_manifest(_write(fixture_dir / "h.csv", "file,label\naudio/a.wav,violin\n"), SR, T)
    with pytest.raises(ManifestError, match="expected \\['path', 'caption'\\]"):
        load_manifest(_write(fixture_dir / "k.csv", "path,label\naudio/a.wav,violin\n"), SR, T, kind="caption")
    with pytest.raises(ManifestError, match="is empty"):
        load_manifest(_write(fixture_dir / "e.csv", "\n"), SR, T)
    with pytest.raises(ManifestError, match="no usable row"), pytest.warns(UserWarning):
        load_manifest(_write(fixture_dir / "n.csv", "path,label\naudio/silent.wav,x\n"), SR, T, skip_bad=True)
