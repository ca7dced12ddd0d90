"""The data path of real datasets: decoded once into a store, read in random training crops."""

import hashlib

import numpy as np
import pytest
import soundfile as sf
import torch

from weaksep.data import MixtureSampler
from weaksep.data import store as store_module
from weaksep.data.store import StoredClips, prepare_store

RATE, CLIP = 8000, 4000


def _manifest(root, files):
    """WAV files of (name, label, samples at 16 kHz stereo) and a manifest listing them (and a missing one)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,label"]
    for name, label, audio in files:
        if audio is None:
            (root / name).write_bytes(b"RIFF not a wav")
        else:
            sf.write(root / name, np.stack([audio, audio], axis=1), 16000)
        rows.append(f"{name},{label}")
    rows.append("missing.wav,violin")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    return root / "train.csv"


def _tone(seconds, silent_from=None):
    t = np.arange(int(seconds * 16000)) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))).astype(np.float32)
    if silent_from is not None:
        x[int(silent_from * 16000) :] = 0
    return x


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    csv = _manifest(
        root,
        [
            ("long.wav", "violin", _tone(30)),  # 30 s: many crops of 0.5 s
            ("short.wav", "flute", _tone(0.2)),  # shorter than a crop: zero-padded
            ("half_silent.wav", "cello", _tone(10, silent_from=4)),  # the last 60 % is silence
            ("silent.wav", "cello", np.zeros(16000, np.float32)),
            ("corrupt.wav", "flute", None),
        ],
    )
    report = prepare_store(csv, root / "store", RATE, CLIP, workers=2)
    return root, csv, report


def test_bad_files_are_skipped_counted_and_listed(store):
    root, csv, report = store
    assert report.kept == 3 and report.decoded == 3
    reasons = {f.split("/")[-1]: r for _, f, r in report.skipped}
    assert set(reasons) == {"silent.wav", "corrupt.wav", "missing.wav"}
    assert "silent" in reasons["silent.wav"] and "not readable" in reasons["corrupt.wav"]
    assert "skipped 3 bad file(s)" in report.summary()
    assert (root / "store" / "skipped.csv").read_text().count("\n") == 4  # header and three files
    again = prepare_store(csv, root / "store", RATE, CLIP, workers=1)  # resumed: nothing decoded twice
    assert again.kept == 3 and again.decoded == 0


def test_training_crops_differ_between_reads_and_stay_inside_the_file(store):
    root, _, _ = store
    clips = StoredClips(root / "store", CLIP)
    k = clips.labels.index("violin")
    whole = torch.from_numpy(np.load(clips.files[k]).astype(np.float32) / 32767)
    g = torch.Generator().manual_seed(0)
    crops = [clips.random_crop(k, g) for _ in range(20)]
    assert len({hashlib.sha256(c.numpy().tobytes()).hexdigest() for c in crops}) == 20
    windows = whole.unfold(0, CLIP, 1)  # every crop inside the file, sample for sample
    for c in crops[:5]:
        assert (windows - c).abs().amax(dim=1).min() < 1e-6
    assert len(whole) == 30 * RATE


def test_a_short_file_is_padded_and_a_silent_crop_is_drawn_again(store, monkeypatch):
    root, _, _ = store
    clips = StoredClips(root / "store", CLIP)
    short = clips.random_crop(clips.labels.index("flute"), torch.Generator().manual_seed(0))
    assert short.shape == (CLIP,) and float(short[int(0.2 * RATE) + 10 :].abs().max()) == 0
    k = clips.labels.index("cello")
    g = torch.Generator().manual_seed(1)
    peaks = [float(clips.random_crop(k, g).abs().max()) for _ in range(40)]
    assert min(peaks) > store_module.SILENCE_PEAK
    monkeypatch.setattr(store_module, "MAX_REDRAWS", 1)  # without the redraw, silent crops get through
    g = torch.Generator().manual_seed(1)
    assert min(float(clips.random_crop(k, g).abs().max()) for _ in range(40)) <= store_module.SILENCE_PEAK


def test_validation_uses_the_centre_and_training_crops_cover_a_long_file(store):
    root, _, _ = store
    clips = StoredClips(root / "store", CLIP, split="val")
    k = clips.labels.index("violin")
    whole = np.load(clips.files[k]).astype(np.float32) / 32767
    start = (len(whole) - CLIP) // 2
    assert torch.allclose(clips.centre_crop(k), torch.from_numpy(whole[start : start + CLIP]))
    covered = np.zeros(len(whole), bool)
    g = torch.Generator().manual_seed(0)
    span = len(whole) - CLIP
    for _ in range(200):
        s = int(torch.randint(span + 1, (1,), generator=g))
        covered[s : s + CLIP] = True
    assert covered.mean() > 0.9


def test_a_sampler_over_a_store_draws_new_crops_each_step(store):
    root, _, _ = store
    clips = StoredClips(root / "store", CLIP)
    sampler = MixtureSampler(clips, 1, 2, with_sources=True, seed=0)
    a = sampler.sample(torch.Generator().manual_seed(0))
    b = sampler.sample(torch.Generator().manual_seed(0))
    c = sampler.sample(torch.Generator().manual_seed(1))
    assert torch.equal(a.sources, b.sources)  # a pure function of the generator's seed
    assert not torch.equal(a.sources, c.sources)
    assert a.sources.shape == (2, 2, 1, CLIP)


def test_rendered_corpora_give_the_batches_they_always_gave(smoke_study):
    """A digest of three smoke batches, computed before the store existed: the committed models'
    batches did not change when the data path learned random crops."""
    clips = smoke_study.clips("train")
    h = hashlib.sha256()
    sampler = MixtureSampler(clips, 2, 4, with_sources=True, seed=3)
    for step in range(3):
        b = sampler.sample(torch.Generator().manual_seed(step))
        h.update(b.mixture.numpy().tobytes())
        h.update(b.sources.numpy().tobytes())
        h.update(repr((b.texts, b.entities)).encode())
    assert h.hexdigest()[:16] == "0094311faf1d063a"


def test_the_step_loader_gives_the_same_batches_with_workers(smoke_study):
    from weaksep.method.objective import BatchSource, step_loader

    cfg = smoke_study.run_config("weak", 2, steps=4)
    source = BatchSource(smoke_study.clips("train"), cfg, smoke_study.profile, 4, 0)
    inline = [b.weak.mixture for b in step_loader(source, 1, 4, workers=0)]
    ahead = [b.weak.mixture for b in step_loader(source, 1, 4, workers=2)]
    assert len(inline) == 3 and all(torch.equal(x, y) for x, y in zip(inline, ahead))
    assert torch.equal(inline[0], source.batch(1).weak.mixture)


def test_prepare_decode_fills_the_stores_a_study_reads(tmp_path, capsys):
    from weaksep.cli import main
    from weaksep.data.fixtures import write_fixture
    from weaksep.reproduce.study import Study

    write_fixture("vggsound", tmp_path / "root")
    args = ["data", "prepare", "--root", str(tmp_path / "root"), "--out", str(tmp_path / "m"), "--skip-bad"]
    args += ["--decode", "--profile", "smoke", "--cache", str(tmp_path / "cache"), "--workers", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("decoded now") == 3  # train, val, test
    study = Study("smoke", data_root=tmp_path / "cache", manifests=tmp_path / "m", progress=False)
    clips = study.clips("train")  # found decoded: nothing is decoded again
    assert isinstance(clips, StoredClips) and "decoded now" not in capsys.readouterr().out
    assert len(clips) > 0 and clips.sample_rate == study.profile.sample_rate
