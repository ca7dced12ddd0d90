"""Public dataset layouts (MUSIC, VGGSound, AudioCaps) -> manifests, on fixture trees written from rendered audio."""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import pytest

from weaksep.cli import build_parser, main
from weaksep.data import (
    LayoutError,
    ManifestError,
    detect_layout,
    fixtures,
    load_manifest,
    music_split,
    prepare_data,
    prepare_layout,
    vggsound_split,
    write_fixture,
)
from weaksep.data.layouts import hash_fraction
from weaksep.profiles import get_profile

LAYOUTS = ("music", "vggsound", "audiocaps")
SMALL = {"train": 2, "val": 1, "test": 1}  # clips per class: the smoke sizes would take longer to render
SMOKE = get_profile("smoke")
KIND = {"music": "label", "vggsound": "label", "audiocaps": "caption"}


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """One small fixture per layout, written once for the module: layout -> FixtureRecord."""
    base = tmp_path_factory.mktemp("layouts")
    return {layout: write_fixture(layout, base / layout, seed=1, per_class=SMALL) for layout in LAYOUTS}


def _copy(record, tmp_path: Path) -> Path:
    """A private copy of a fixture tree, for tests that edit its metadata."""
    return Path(shutil.copytree(record.root, tmp_path / f"{record.layout}-copy"))


def _quiet_prepare(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = prepare_layout(*args, **kwargs)
    return report, [str(w.message) for w in caught]


# --------------------------------------------------------------------------- fixture -> prepare -> manifests
@pytest.mark.parametrize("layout", LAYOUTS)
def test_prepared_manifests_match_the_fixtures_record(trees, layout, tmp_path):
    record = trees[layout]
    report, _ = _quiet_prepare(record.root, tmp_path / "m", skip_bad=True)
    assert report.layout == layout
    assert report.kept == record.kept and report.missing == record.missing == {"train": 1, "val": 1, "test": 1}
    assert len(report.skipped) == 1
    assert record.corrupt in report.skipped[0] and f"line {record.corrupt_line}" in report.skipped[0]
    assert record.corrupt_metadata in report.skipped[0]
    # Sizes: every class has SMALL clips per split (AudioCaps: events x SMALL / 2 two-event clips).
    per_split = {s: SMALL[s] * len(record.classes) // (2 if layout == "audiocaps" else 1) for s in SMALL}
    assert record.kept == per_split

    for split in ("train", "val", "test"):
        clips = load_manifest(tmp_path / "m" / f"{split}.csv", SMOKE.sample_rate, SMOKE.clip_samples, kind=KIND[layout])
        assert len(clips) == record.kept[split]
        expected = sorted(Path(record.root, f).resolve() for f in record.files[split])
        assert sorted(p.resolve() for p in clips.paths) == expected
        assert clips.audio.shape == (record.kept[split], SMOKE.clip_samples)
        if layout == "audiocaps":
            assert len(set(clips.paths)) == len(clips.paths)  # one row per clip, the first caption
            assert all(len(e) == 2 for e in clips.entities)  # two events named in each caption
        else:
            assert set(clips.labels) == set(record.classes) and all(
                SMALL[split] == clips.labels.count(c) for c in record.classes
            )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_study_on_prepared_manifests_mixes_their_clips_and_records_their_source(trees, layout, tmp_path):
    from weaksep.reproduce.study import Study

    record = trees[layout]
    report, _ = _quiet_prepare(record.root, tmp_path / "m", skip_bad=True)
    study = Study("smoke", manifests=tmp_path / "m", data_root=tmp_path / "cache", results_dir=tmp_path / "r")
    assert study.data_info() == {
        "source": "manifests",
        "manifests": study.data_name().split(":", 1)[1],
        "layout": layout,
        "root": layout,
        "kept": report.kept,
        "missing": record.missing,
        "skipped_bad": 1,
    }
    clips = study.clips("test")
    assert clips.kind == KIND[layout]  # told from the manifest's header
    mix = study.testset(2)
    queries = {q for qs in mix.labels for q in qs}
    # Each source is queried with its class name, or (AudioCaps) with its own caption.
    assert queries <= set(clips.labels) and all(len(set(qs)) == 2 for qs in mix.labels)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_summary_is_one_line_of_kept_missing_and_notes(trees, layout, tmp_path, capsys):
    record = trees[layout]
    with pytest.warns(UserWarning, match=rf"skipped 1 bad row\(s\): .*{re.escape(record.corrupt)}"):
        out = prepare_data(record.root, tmp_path / "m", skip_bad=True)
    assert out == (tmp_path / "m").resolve()
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    k, m = record.kept, record.missing
    assert f"kept train {k['train']}, val {k['val']}, test {k['test']} clips" in line
    assert f"missing audio train {m['train']}, val {m['val']}, test {m['test']}" in line
    assert "1 bad row(s) skipped" in line
    if layout == "music":
        assert f"{record.duets} duet videos" in line and record.duets == 3
    if layout == "audiocaps":
        assert f"{record.repeats} further captions" in line and record.repeats > 0
    else:
        assert f"{len(record.classes)} classes" in line


@pytest.mark.parametrize("layout", LAYOUTS)
def test_corrupt_file_stops_preparation_naming_metadata_line_and_file(trees, layout, tmp_path):
    record = trees[layout]
    with pytest.raises(LayoutError) as err:
        prepare_layout(record.root, tmp_path / "m")
    message = str(err.value)
    assert str(Path(record.root) / record.corrupt_metadata) in message
    assert f"line {record.corrupt_line}:" in message and record.corrupt in message
    assert "not readable by soundfile" in message and "skip_bad" in message
    assert isinstance(err.value, ManifestError)
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_corrupt_line_is_where_the_metadata_lists_the_file(trees):
    """The fixture's own record, checked against the metadata text (independently of layouts/)."""
    for layout, record in trees.items():
        stem = Path(record.corrupt).stem
        line = (Path(record.root) / record.corrupt_metadata).read_text().splitlines()[record.corrupt_line - 1]
        if layout == "music":
            names = {line.strip().strip('",')}
        elif layout == "vggsound":
            vid, start = next(csv.reader([line]))[:2]
            names = {f"{vid}_{int(start):06d}"}
        else:
            cap_id, vid, start = next(csv.reader([line]))[:3]
            names = {cap_id, f"{vid}_{start}"}
        assert stem in names, (layout, line)
        assert (Path(record.root) / record.corrupt).read_bytes() == fixtures.CORRUPT_BYTES


def test_music_classes_splits_and_ignored_folders(trees, tmp_path):
    record = trees["music"]
    prepare_layout(record.root, tmp_path / "m", skip_bad=True)
    labels = set()
    for split in ("train", "val", "test"):
        with open(tmp_path / "m" / f"{split}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        labels |= {r["label"] for r in rows}
        assert all(music_split(Path(r["path"]).stem) == split for r in rows)
    assert "acoustic guitar" in labels and "acoustic_guitar" not in labels  # the study's class names
    assert (Path(record.root) / "audio" / "bagpipe").is_dir() and "bagpipe" not in labels  # not in the JSON


def test_vggsound_val_is_carved_from_train_and_padding_is_optional(trees, tmp_path):
    record = trees["vggsound"]
    prepare_layout(record.root, tmp_path / "m", skip_bad=True)
    with open(Path(record.root) / "vggsound.csv", newline="") as f:
        meta = {r[0]: r for r in csv.reader(f)}
    names = []
    for split in ("train", "val", "test"):
        with open(tmp_path / "m" / f"{split}.csv", newline="") as f:
            for r in csv.DictReader(f):
                stem = Path(r["path"]).stem
                vid, start = stem.rsplit("_", 1)
                assert meta[vid][2] == r["label"] and int(start) == int(meta[vid][1])
                assert meta[vid][3] == ("test" if split == "test" else "train")
                names.append(start)
    assert any(len(s) == 6 for s in names) and any(len(s) < 6 for s in names)  # padded and unpadded both found


# --------------------------------------------------------------------------- bad metadata rows
def test_vggsound_empty_label_and_bad_rows_name_their_line(trees, tmp_path):
    root = _copy(trees["vggsound"], tmp_path)
    meta = root / "vggsound.csv"
    n = len(meta.read_text().splitlines())
    vid, start = Path(trees["vggsound"].files["train"][0]).stem.rsplit("_", 1)
    with open(meta, "a", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([vid + "x", start, "", "train"])  # line n + 1: empty label
        w.writerow([vid + "y", "soon", "bird", "train"])  # line n + 2: start not a number
        w.writerow([vid + "z", "3", "bird chirping, tweeting", "validation"])  # line n + 3: unknown split
    with pytest.raises(LayoutError, match=rf"vggsound.csv line {n + 1}: has an empty label"):
        prepare_layout(root, tmp_path / "m")
    report, warned = _quiet_prepare(root, tmp_path / "m", skip_bad=True)
    assert sorted(int(re.search(r"line (\d+)", s).group(1)) for s in report.skipped) == sorted(
        [n + 1, n + 2, n + 3, trees["vggsound"].corrupt_line]
    )
    assert any("'validation'" in s for s in report.skipped) and any("'soon'" in s for s in report.skipped)
    assert report.kept == trees["vggsound"].kept


def test_audiocaps_empty_caption_names_its_line(trees, tmp_path):
    root = _copy(trees["audiocaps"], tmp_path)
    meta = root / "test.csv"
    with open(meta, newline="") as f:
        rows = list(csv.reader(f))
    rows[3][3] = "  "  # line 4
    with open(meta, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    with pytest.raises(LayoutError, match=rf"test.csv line 4: has an empty caption \(audiocap_id {rows[3][0]}"):
        prepare_layout(root, tmp_path / "m")


def test_music_empty_class_and_bad_json_name_the_file(trees, tmp_path):
    root = _copy(trees["music"], tmp_path)
    meta = root / "MUSIC_solo_videos.json"
    data = json.loads(meta.read_text())
    data["videos"][""] = ["abcdefghijk"]
    meta.write_text(json.dumps(data, indent=1))
    line = next(i + 1 for i, t in enumerate(meta.read_text().splitlines()) if t.strip().startswith('"":'))
    with pytest.raises(LayoutError, match=rf"MUSIC_solo_videos.json line {line}: has an empty class name"):
        prepare_layout(root, tmp_path / "m", skip_bad=False)
    meta.write_text('{"videos": {"violin": ["a",]}}')
    with pytest.raises(LayoutError, match=r"MUSIC_solo_videos.json line 1: not valid JSON"):
        prepare_layout(root, tmp_path / "m", skip_bad=True)  # a broken file is never skipped
    meta.write_text('{"violin": ["abc"]}')
    with pytest.raises(LayoutError, match=r"expected \{\"videos\""):
        prepare_layout(root, tmp_path / "m")


def test_no_audio_at_all_says_what_file_names_were_looked_for(trees, tmp_path):
    root = tmp_path / "vgg"
    root.mkdir()
    shutil.copy(Path(trees["vggsound"].root) / "vggsound.csv", root)
    (root / "audio").mkdir()
    (root / "audio" / "abc_000001.m4a").write_bytes(b"\0" * 16)  # youtube-dl's default format
    with pytest.raises(LayoutError) as err:
        prepare_layout(root, tmp_path / "m")
    message = str(err.value)
    assert "no usable audio for split(s) ['train', 'test']" in message
    assert "<youtube id>_<start, 6 digits>.<ext>" in message and "flac" in message
    assert "1 .m4a files not used (soundfile cannot read them): convert them to wav or flac" in message


# --------------------------------------------------------------------------- detection and prepare_data
def test_detect_layout(trees, tmp_path):
    for layout, record in trees.items():
        assert detect_layout(record.root) == layout
    prepare_layout(trees["music"].root, tmp_path / "m", skip_bad=True)
    assert detect_layout(tmp_path / "m") == "manifests"
    nested = tmp_path / "nested" / "MUSIC_dataset"
    nested.mkdir(parents=True)
    shutil.copy(Path(trees["music"].root) / "MUSIC_solo_videos.json", nested / "MUSIC21_solo_videos.json")
    assert detect_layout(tmp_path / "nested") == "music"
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError) as err:
        detect_layout(tmp_path / "empty")
    for looked_for in (
        "MUSIC_solo_videos.json",
        "MUSIC21_solo_videos.json",
        "vggsound.csv",
        "audiocap_id,youtube_id,start_time,caption",
        "path,label",
    ):
        assert looked_for in str(err.value)
    with pytest.raises(LayoutError, match="several datasets"):
        detect_layout(Path(trees["music"].root).parent)  # holds all three fixtures
    with pytest.raises(LayoutError, match="is not a folder"):
        detect_layout(tmp_path / "nowhere")


def test_prepare_data_returns_a_manifest_folder_as_is_and_caches(trees, tmp_path, capsys):
    record = trees["vggsound"]
    with pytest.warns(UserWarning):
        out = prepare_data(record.root, tmp_path / "m", skip_bad=True)
    assert prepare_data(out, tmp_path / "unused") == out and not (tmp_path / "unused").exists()
    capsys.readouterr()
    before = (out / "train.csv").read_bytes()
    with pytest.warns(UserWarning):  # the skipped row is reported again
        prepare_data(record.root, out, skip_bad=True)
    assert capsys.readouterr().out.rstrip().endswith("(cached)")
    assert (out / "train.csv").read_bytes() == before
    # Outside the dataset root: absolute paths; inside: relative to the manifest folder.
    assert all(Path(r[0]).is_absolute() for r in list(csv.reader(open(out / "train.csv")))[1:])


def test_manifests_inside_the_root_use_relative_paths(trees, tmp_path):
    root = _copy(trees["music"], tmp_path)
    prepare_layout(root, root / "manifests", skip_bad=True)
    rows = list(csv.DictReader(open(root / "manifests" / "train.csv")))
    assert all(r["path"].startswith("../audio/") for r in rows)
    moved = Path(shutil.move(str(root), str(tmp_path / "moved")))  # dataset and manifests move together
    assert len(load_manifest(moved / "manifests" / "train.csv", SMOKE.sample_rate, SMOKE.clip_samples)) == len(rows)
    with pytest.raises(LayoutError, match="expected a folder of its own"):
        prepare_layout(moved, moved)


def test_new_audio_invalidates_the_cache(trees, tmp_path):
    root = _copy(trees["music"], tmp_path)
    first, _ = _quiet_prepare(root, tmp_path / "m", skip_bad=True)
    (root / Path(trees["music"].corrupt)).unlink()  # the user deletes the corrupt download
    second = prepare_layout(root, tmp_path / "m")
    assert not second.cached and second.skipped == [] and second.missing["train"] == first.missing["train"] + 1


def test_splits_by_hash_are_fixed_and_have_the_documented_sizes():
    ids = [f"id{i:05d}" for i in range(20000)]
    music = [music_split(v) for v in ids]
    assert abs(music.count("train") / len(ids) - 0.8) < 0.01 and abs(music.count("val") / len(ids) - 0.1) < 0.01
    val = sum(vggsound_split(v, "train") == "val" for v in ids) / len(ids)
    assert abs(val - 0.05) < 0.005 and all(vggsound_split(v, "test") == "test" for v in ids[:100])
    # The hash is SHA-256 of the id: the same on every machine and Python (no PYTHONHASHSEED).
    assert (
        hash_fraction("music:---g-f_I2yQ")
        == int.from_bytes(__import__("hashlib").sha256(b"music:---g-f_I2yQ").digest()[:8], "big") / 2**64
    )


def test_write_fixture_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        write_fixture("music", tmp_path / "busy", per_class=SMALL)
    with pytest.raises(ValueError, match="unknown fixture layout"):
        write_fixture("audioset", tmp_path / "new")
    assert os.listdir(tmp_path) == ["busy"]


# --------------------------------------------------------------------------- command line
def test_cli_prepare_stops_at_the_corrupt_file_and_skips_it_on_request(trees, tmp_path, capsys):
    record = trees["audiocaps"]
    out = tmp_path / "m"
    assert main(["data", "prepare", "--root", record.root, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("weaksep: error: ") and "\n" not in err
    assert f"train.csv line {record.corrupt_line}:" in err and record.corrupt in err
    assert (
        main(["data", "prepare", "--layout", "audiocaps", "--root", record.root, "--out", str(out), "--skip-bad"]) == 0
    )
    printed = capsys.readouterr().out
    assert printed.startswith("AudioCaps at ") and f"kept train {record.kept['train']}," in printed
    assert "note: AudioCaps at" in printed and record.corrupt in printed
    assert (out / "test.csv").read_text().startswith("path,caption\n")


def test_cli_bad_input_exits_2_with_one_line(trees, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["data", "prepare", "--root", str(tmp_path / "empty"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot recognise the dataset layout" in err and "vggsound.csv" in err
    assert (
        main(["data", "prepare", "--layout", "vggsound", "--root", trees["music"].root, "--out", str(tmp_path / "m")])
        == 2
    )
    assert "no VGGSound metadata" in capsys.readouterr().err
    assert main(["data", "prepare", "--layout", "audioset", "--root", ".", "--out", "m"]) == 2  # argparse
    assert main(["data", "fixture", "--layout", "music", "--out", trees["music"].root]) == 2
    assert "not empty" in capsys.readouterr().err


def test_cli_fixture_then_prepare(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fixtures, "write_fixture", functools.partial(fixtures.write_fixture, per_class=SMALL))
    assert main(["data", "fixture", "--layout", "vggsound", "--out", str(tmp_path / "vgg"), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    record = fixtures.read_fixture_record(tmp_path / "vgg")
    assert record.seed == 3 and f"vggsound fixture in {tmp_path / 'vgg'}" in printed and "--skip-bad" in printed
    assert main(["data", "prepare", "--root", str(tmp_path / "vgg"), "--out", str(tmp_path / "m"), "--skip-bad"]) == 0
    assert "VGGSound at" in capsys.readouterr().out
    assert main(["data", "prepare", "--root", str(tmp_path / "m"), "--out", str(tmp_path / "x")]) == 0
    assert "already holds manifests" in capsys.readouterr().out


def test_every_option_is_explained():
    verbs = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    subs = next(a for a in verbs.choices["data"]._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(subs.choices) == {"render", "prepare", "recorded", "fixture"}
    for name, sub in subs.choices.items():
        for action in sub._actions:
            assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest}"
