"""The recorded corpus: its rules on the real packages' names, and its builder on stand-in packages
built here with ``dpkg-deb -b`` (never a download)."""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from weaksep.data.recorded import (
    RecordedCorpusError,
    Recording,
    assign_splits,
    build_recorded,
    classify,
    fetch_package,
)
from weaksep.data.recorded_fixture import KITS, SYNTHETIC_KIT, fixture_sources, write_recorded_debs
from weaksep.data.recorded_rules import SPLITS
from weaksep.paths import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs Debian's dpkg-deb")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    "package, name, label, group",
    [
        ("hydrogen-drumkits", "BJA_Pacific/Hi Hat Closed/HH_closed_1.wav", "hi-hat", "BJA_Pacific"),
        ("hydrogen-drumkits", "rumpf_kit_z01_h2/c3 - bass drum 1/bd1.flac", "kick drum", "rumpf_kit_z01_h2"),
        (
            "hydrogen-drumkits",
            "ColomboAcousticDrumkit/ride-crash20inch/x.wav",
            "crash cymbal",
            "ColomboAcousticDrumkit",
        ),
        ("hydrogen-drumkits", "HardElectro1/Kick 1/k.wav", None, None),  # synthetic kit
        ("hydrogen-drumkits", "Audiophob/Kick/86335__zgump__tom-0105.wav", None, None),  # gathered, partly synthetic
        ("hydrogen-drumkits", "BJA_Pacific/Ride Bell/rb.wav", "ride cymbal", "BJA_Pacific"),
        (
            "hydrogen-drumkits-effects",
            "belofilms_GuitarStrums/Amajor_DOWN_01.flac/Amajor_DOWN_01.flac",
            "acoustic guitar strum",
            "Amajor",
        ),
        ("sonic-pi-samples", "tabla_ghe3.flac", "tabla", "tabla_ghe"),
        ("sonic-pi-samples", "tabla_te_ne.flac", "tabla", "tabla_te_ne"),
        ("sonic-pi-samples", "elec_beep.flac", None, None),
        ("ktuberling-data", "sr@latin/moon.ogg", "a spoken word", "sr"),
        ("hedgewars-data", "Default_es/Laugh.ogg", "laughing", "Default"),
        ("hedgewars-data", "Robot/Laugh.ogg", None, None),  # processed voice
        ("0ad-data", "audio/actor/singlesteps/fs_snow_12.ogg", "footsteps", "audio/actor/singlesteps/fs_snow_12.ogg"),
        ("0ad-data", "audio/music/Sunrise.ogg", None, None),
        ("wesnoth-1.16-data", "wolf-growl-2.ogg", "wolf growling", "wolf-growl-2.ogg"),
    ],
)
def test_rules_give_the_class_and_recording_group_of_real_package_names(package, name, label, group):
    hit = classify(package, name)
    assert hit == (None if label is None else (label, f"{package}:{group}"))


def test_a_kit_shared_by_classes_keeps_one_split_and_short_classes_are_dropped():
    def rec(label: str, group: str) -> Recording:
        return Recording(f"{label}/{group}", label, group, "p", 1.0)

    kits = [f"kit{i}" for i in range(7)]
    recs = [rec(lab, k) for lab in ("kick drum", "snare drum") for k in kits]
    recs += [rec("hi-hat", k) for k in kits[:3]]  # in three kits only
    split_of, dropped = assign_splits(recs)
    assert set(split_of) == set(kits)  # one split per kit, whatever class placed it
    assert {s for s in split_of.values()} == set(SPLITS)
    assert dropped == [("hi-hat", 3, "fewer than one per split (4)")]


@pytest.fixture(scope="module")
def fixture_corpus(tmp_path_factory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("recorded")
    write_recorded_debs(folder / "debs", tmp_path_factory.mktemp("trees"))
    return folder, build_recorded(folder, sources=fixture_sources(), download=False)


def test_builder_splits_the_stand_in_packages_by_recording(fixture_corpus):
    folder, report = fixture_corpus
    rows = _rows(folder / "recordings.csv")
    split_of_group = defaultdict(set)
    for r in rows:
        split_of_group[r["group"]].add(r["split"])
        assert (folder / r["path"]).is_file() and not Path(r["path"]).is_absolute()
    assert all(len(s) == 1 for s in split_of_group.values()), "a recording group spans splits"
    labels = {r["label"] for r in rows}
    assert labels == {"footsteps", "arrow hitting a target", "kick drum", "snare drum", "a spoken word", "tabla"}
    for label in labels:  # every class in every split
        assert {r["split"] for r in rows if r["label"] == label} == set(SPLITS), label
    # the synthetic kit, the music, the electronic samples and the game's definitions are left out
    assert not any(SYNTHETIC_KIT in r["path"] or "music" in r["path"] or "elec_" in r["path"] for r in rows)
    assert {r["group"].split(":")[1] for r in rows if r["label"] == "kick drum"} == set(KITS)
    # sr@latin is sr's speaker; the copied file is kept once
    assert "ktuberling-data:sr@latin" not in split_of_group and "ktuberling-data:sr" in split_of_group
    assert report.duplicates == 1
    assert [d[0] for d in report.dropped] == ["chicken clucking"]
    assert "dropped class 'chicken clucking': 3 recording groups" in report.summary()
    # the manifests are what the study reads: path,label, the rows of recordings.csv split by split
    for split in SPLITS:
        manifest = _rows(folder / f"{split}.csv")
        assert manifest == [{"path": r["path"], "label": r["label"]} for r in rows if r["split"] == split]


def test_builder_is_deterministic(fixture_corpus, tmp_path):
    folder, _ = fixture_corpus
    shutil.copytree(folder / "debs", tmp_path / "debs")
    build_recorded(tmp_path, sources=fixture_sources(), download=False)
    for name in ("recordings.csv", "classes.csv", "sources.csv", *(f"{s}.csv" for s in SPLITS)):
        assert (tmp_path / name).read_text() == (folder / name).read_text(), name


def test_missing_apt_get_is_an_error_naming_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get
    with pytest.raises(RecordedCorpusError, match=r"apt-get not found.*apt-get download sonic-pi-samples"):
        fetch_package("sonic-pi-samples", tmp_path / "debs")
    with pytest.raises(RecordedCorpusError, match=r"no sonic-pi-samples_\*\.deb"):
        fetch_package("sonic-pi-samples", tmp_path / "debs", download=False)


def test_committed_listing_is_split_by_recording_and_holds_no_machine_path():
    listing = REPO_ROOT / "results" / "recorded"
    if not (listing / "recordings.csv").is_file():
        pytest.skip("the recorded corpus's listing is not committed")
    rows = _rows(listing / "recordings.csv")
    splits = defaultdict(set)
    for r in rows:
        splits[r["group"]].add(r["split"])
        assert r["path"].startswith(("packages/", "extracted/")), r["path"]
    assert all(len(s) == 1 for s in splits.values())
    for label in {r["label"] for r in rows}:
        assert {r["split"] for r in rows if r["label"] == label} == set(SPLITS), label
    assert {r["package"] for r in _rows(listing / "sources.csv")} >= {r["package"] for r in rows}
