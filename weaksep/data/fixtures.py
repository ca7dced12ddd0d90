"""Tiny datasets in the public layouts of MUSIC, VGGSound and AudioCaps, made of rendered audio.

``write_fixture(layout, out)`` writes, in a new folder, the dataset's own
metadata and a folder of audio as a user's download looks (see ``layouts/``):

music
    ``MUSIC_solo_videos.json`` (the 11 classes), ``MUSIC_duet_videos.json``
    (3 duet videos, no audio) and ``audio/<class>/<youtube id>.<wav|flac|ogg>``
    rendered from the ``instruments`` corpus' generators; the video ids are
    drawn so that the hash split of :func:`weaksep.data.layouts.music_split`
    gives each class exactly ``per_class`` train / val / test clips. A folder
    ``audio/bagpipe/`` of a class the JSON does not list is there to be ignored.
vggsound
    ``vggsound.csv`` (no header; rows shuffled) and
    ``audio/<youtube id>_<start>.<ext>``, start padded to 6 digits except for
    every fourth file, from the ``events`` corpus (labels are its class names).
audiocaps
    ``train.csv``, ``val.csv``, ``test.csv`` and ``audio/<split>/`` files
    named ``<youtube id>_<start_time>`` or ``<audiocap_id>``; each clip is two
    event clips of distinct classes mixed, captioned by
    :func:`weaksep.data.caption_for`; val and test clips have two captions
    each (AudioCaps has five).

Sizes default to the smoke profile's clips per class (8 train, 2 val, 3 test;
for AudioCaps, whose clips hold two of the 10 events, 5 times that many clips
per split), so the smoke study trains and evaluates on a fixture as on its
rendered corpora; clips have the smoke profile's length and rate. Every fixture also has one clip per split listed in
the metadata without an audio file (missing downloads are the norm) and
exactly one corrupt file in the train split: garbage bytes under a ``.wav``
name.

The corrupt file is deliberate, so the two ways in behave differently:
``weaksep data prepare`` without ``--skip-bad`` stops at it with an
error naming the metadata file, its line and the audio file, while
``prepare_data(root, out, skip_bad=True)`` (what ``make reproduce DATA=...``
and the notebooks call for a dataset root) leaves it out, says so in its
summary line and lists it in a warning. ``FIXTURE.json`` records what a
correct preparation must find: clips kept and missing per split and where the
corrupt file is listed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import string
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..profiles import get_profile
from .captions import caption_for
from .classes import EVENTS, INSTRUMENTS, slug
from .layouts import (
    DATASET_LAYOUTS,
    MANIFEST_SPLITS,
    MUSIC_DUET_FILE,
    MUSIC_SOLO_FILES,
    VGGSOUND_FILE,
    music_split,
    vggsound_split,
)
from .render import PEAK_LIMIT, ClipRenderer, clip_seed, make_score
from .soundfonts import find_soundfont

FIXTURE_FILE = "FIXTURE.json"
FIXTURE_PROFILE = "smoke"  # clip length, rate and default sizes
CORRUPT_BYTES = b"not audio: this download stopped half way\n" * 8
_ID_CHARS = string.ascii_letters + string.digits + "-_"  # YouTube's id alphabet
_EXTENSIONS: tuple[str, ...] = ("wav", "flac", "wav", "ogg")  # cycled: each format soundfile reads
_SUBTYPES: dict[str, str] = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}


@dataclass
class FixtureRecord:
    """What a fixture holds and what preparing it (with ``skip_bad``) must find.

    ``kept`` / ``missing`` count clips per split; ``corrupt`` is the unreadable
    file and ``corrupt_metadata`` / ``corrupt_line`` where the metadata lists
    it (paths relative to ``root``); ``repeats`` are metadata rows beyond the
    first of a clip (AudioCaps' further captions); ``duets`` MUSIC duet videos.
    """

    layout: str
    root: str
    seed: int
    per_class: dict[str, int]
    classes: list[str]
    kept: dict[str, int]
    missing: dict[str, int]
    corrupt: str
    corrupt_split: str
    corrupt_metadata: str
    corrupt_line: int
    repeats: int = 0
    duets: int = 0
    files: dict[str, list[str]] = field(default_factory=dict)  # kept audio per split, relative to root


def read_fixture_record(root: str | Path) -> FixtureRecord:
    """The ``FIXTURE.json`` of a fixture folder."""
    path = Path(root) / FIXTURE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected a folder written by write_fixture")
    return FixtureRecord(**json.loads(path.read_text()))


def _youtube_id(rng: np.random.Generator, used: set[str], in_split: Callable[[str], bool] | None = None) -> str:
    """A new 11-character YouTube-like id (for which ``in_split`` holds, if given)."""
    while True:
        vid = "".join(_ID_CHARS[int(i)] for i in rng.integers(len(_ID_CHARS), size=11))
        if vid not in used and (in_split is None or in_split(vid)):
            used.add(vid)
            return vid


class _Writer:
    """Renders clips of the fixture profile and writes them under the fixture folder."""

    def __init__(self, folder: Path, layout: str, seed: int) -> None:
        self.profile = get_profile(FIXTURE_PROFILE)
        self.renderer = ClipRenderer(
            find_soundfont(self.profile.separation_soundfont, required=True), self.profile.sample_rate
        )
        self.folder, self.layout, self.seed = folder, layout, seed
        self.count = 0

    def render(self, corpus: str, label: str, *identity: object) -> torch.Tensor:
        seed = clip_seed(self.seed, "fixture", self.layout, label, *identity)
        score = make_score(corpus, label, self.profile.clip_seconds, seed)
        return self.renderer.render(score, self.profile.clip_samples)

    def write(self, rel_stem: str, audio: torch.Tensor) -> str:
        """Write ``audio`` as ``rel_stem`` + the next extension of the cycle; its path relative to the folder."""
        ext = _EXTENSIONS[self.count % len(_EXTENSIONS)]
        self.count += 1
        rel = f"{rel_stem}.{ext}"
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), audio.numpy(), self.profile.sample_rate, subtype=_SUBTYPES[ext])
        return rel

    def corrupt(self, rel: str) -> str:
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(CORRUPT_BYTES)
        return rel


def _line_of(text: str, needle: str) -> int:
    """1-based number of the first line of ``text`` containing ``needle``."""
    return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)


def _music(w: _Writer, rng: np.random.Generator, per_class: dict[str, int]) -> dict:
    """MUSIC's JSON files and class folders; the record's fields besides layout, root and sizes."""
    classes = sorted(INSTRUMENTS)
    used: set[str] = set()
    videos: dict[str, list[str]] = {slug(c): [] for c in classes}
    files: dict[str, list[str]] = {s: [] for s in MANIFEST_SPLITS}
    for label in classes:
        for split in MANIFEST_SPLITS:
            for i in range(per_class[split]):
                vid = _youtube_id(rng, used, lambda v, split=split: music_split(v) == split)
                audio = w.render("instruments", label, split, i)
                files[split].append(w.write(f"audio/{slug(label)}/{vid}", audio))
                videos[slug(label)].append(vid)
    for split, label in zip(MANIFEST_SPLITS, classes):  # listed, never downloaded
        videos[slug(label)].append(_youtube_id(rng, used, lambda v, split=split: music_split(v) == split))
    bad_label = classes[3]
    bad_vid = _youtube_id(rng, used, lambda v: music_split(v) == "train")
    corrupt = w.corrupt(f"audio/{slug(bad_label)}/{bad_vid}.wav")
    videos[slug(bad_label)].append(bad_vid)
    for ids in videos.values():  # the JSON lists a class's videos in no split order
        rng.shuffle(ids)
    text = json.dumps({"videos": videos}, indent=1) + "\n"
    (w.folder / MUSIC_SOLO_FILES[0]).write_text(text)
    duets = {
        "acoustic_guitar violin": [_youtube_id(rng, used), _youtube_id(rng, used)],
        "flute violin": [_youtube_id(rng, used)],
    }
    (w.folder / MUSIC_DUET_FILE).write_text(json.dumps({"videos": duets}, indent=1) + "\n")
    first = Path(files["train"][0])
    stray = w.folder / "audio" / "bagpipe" / f"{_youtube_id(rng, used)}{first.suffix}"  # a class the JSON does not list
    stray.parent.mkdir(parents=True)
    shutil.copyfile(w.folder / first, stray)
    return dict(
        classes=classes,
        files=files,
        missing={s: 1 for s in MANIFEST_SPLITS},
        corrupt=corrupt,
        corrupt_split="train",
        corrupt_metadata=MUSIC_SOLO_FILES[0],
        corrupt_line=_line_of(text, f'"{bad_vid}"'),
        duets=sum(len(v) for v in duets.values()),
    )


def _vggsound(w: _Writer, rng: np.random.Generator, per_class: dict[str, int]) -> dict:
    """VGGSound's header-less CSV and one folder of ``<id>_<start>`` files; the record's fields."""
    classes = sorted(EVENTS)
    used: set[str] = set()
    rows: list[list[str]] = []
    files: dict[str, list[str]] = {s: [] for s in MANIFEST_SPLITS}

    def listed(label: str, split: str) -> tuple[str, int, str]:
        csv_split = "test" if split == "test" else "train"
        vid = _youtube_id(rng, used, lambda v: vggsound_split(v, csv_split) == split)
        start = int(rng.integers(0, 300))
        rows.append([vid, str(start), label, csv_split])
        return vid, start, csv_split

    for label in classes:
        for split in MANIFEST_SPLITS:
            for i in range(per_class[split]):
                vid, start, _ = listed(label, split)
                # Most downloaders pad the start to 6 digits; some do not.
                stem = f"{vid}_{start}" if w.count % 4 == 3 else f"{vid}_{start:06d}"
                files[split].append(w.write(f"audio/{stem}", w.render("events", label, split, i)))
    for split, label in zip(MANIFEST_SPLITS, classes):
        listed(label, split)
    bad_vid, bad_start, _ = listed(classes[3], "train")
    corrupt = w.corrupt(f"audio/{bad_vid}_{bad_start:06d}.wav")
    order = rng.permutation(len(rows))
    rows = [rows[int(i)] for i in order]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    (w.folder / VGGSOUND_FILE).write_text(buf.getvalue())
    line = next(i + 1 for i, r in enumerate(rows) if r[0] == bad_vid)
    return dict(
        classes=classes,
        files=files,
        missing={s: 1 for s in MANIFEST_SPLITS},
        corrupt=corrupt,
        corrupt_split="train",
        corrupt_metadata=VGGSOUND_FILE,
        corrupt_line=line,
    )


def _audiocaps(w: _Writer, rng: np.random.Generator, per_class: dict[str, int]) -> dict:
    """AudioCaps' three CSVs and two-event mixtures with captions; the record's fields."""
    classes = sorted(EVENTS)
    used: set[str] = set()
    files: dict[str, list[str]] = {s: [] for s in MANIFEST_SPLITS}
    next_id = int(rng.integers(1000, 90000))
    repeats, corrupt, corrupt_line = 0, "", 0
    for split in MANIFEST_SPLITS:
        n_clips = max(1, per_class[split] * len(classes) // 2)  # each clip holds two events
        rows: list[list[str]] = []
        # n_clips with audio, then one listed without a file, then (train) the corrupt one.
        for k in range(n_clips + 1 + (split == "train")):
            a, b = (classes[int(i)] for i in rng.choice(len(classes), 2, replace=False))
            vid, start = _youtube_id(rng, used), int(rng.integers(0, 300))
            n_captions = 1 if split == "train" else 2
            ids = [next_id + j for j in range(n_captions)]
            next_id += n_captions
            repeats += n_captions - 1
            for cap_id in ids:
                rows.append([str(cap_id), vid, str(start), caption_for([a, b], rng)])
            stem = f"audio/{split}/" + (f"{vid}_{start}" if k % 2 == 0 else str(ids[0]))
            if k < n_clips:
                gains = 10.0 ** (rng.uniform(-3.0, 3.0, 2) / 20.0)
                mix = float(gains[0]) * w.render("events", a, split, k, 0) + float(gains[1]) * w.render(
                    "events", b, split, k, 1
                )
                mix = mix * min(1.0, PEAK_LIMIT / float(mix.abs().max()))
                files[split].append(w.write(stem, mix))
            elif k > n_clips:
                corrupt = w.corrupt(f"{stem}.wav")
                corrupt_line = len(rows) + 1  # after the header row
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        writer.writerows(rows)
        (w.folder / f"{split}.csv").write_text(buf.getvalue())
    return dict(
        classes=classes,
        files=files,
        missing={s: 1 for s in MANIFEST_SPLITS},
        corrupt=corrupt,
        corrupt_split="train",
        corrupt_metadata="train.csv",
        corrupt_line=corrupt_line,
        repeats=repeats,
    )


_WRITERS = {"music": _music, "vggsound": _vggsound, "audiocaps": _audiocaps}


def write_fixture(
    layout: str, out: str | Path, seed: int = 0, per_class: Mapping[str, int] | None = None
) -> FixtureRecord:
    """Write a tiny ``layout`` dataset ("music", "vggsound" or "audiocaps") into the new folder ``out``.

    ``per_class`` sets clips per class and split (default: the smoke
    profile's 8 / 2 / 3). The folder is built beside ``out`` and renamed into
    place, so an interrupted run leaves nothing half-written. Returns the
    record also saved as ``out/FIXTURE.json``.
    """
    if layout not in _WRITERS:
        raise ValueError(f"unknown fixture layout {layout!r}; expected one of {list(DATASET_LAYOUTS)}")
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"fixture folder {out} exists and is not empty; expected a new or empty folder")
    profile = get_profile(FIXTURE_PROFILE)
    sizes = {s: int(profile.clips_per_class[s]) for s in MANIFEST_SPLITS} if per_class is None else dict(per_class)
    if sorted(sizes) != sorted(MANIFEST_SPLITS) or min(sizes.values()) < 1:
        raise ValueError(f"per_class must give at least 1 clip for each of {list(MANIFEST_SPLITS)}, got {sizes}")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        writer = _Writer(tmp, layout, seed)
        made = _WRITERS[layout](writer, np.random.default_rng(clip_seed(seed, "fixture", layout)), sizes)
        files = made.pop("files")
        record = FixtureRecord(
            layout=layout,
            root=str(out),
            seed=seed,
            per_class=sizes,
            kept={s: len(files[s]) for s in MANIFEST_SPLITS},
            files=files,
            **made,
        )
        (tmp / FIXTURE_FILE).write_text(json.dumps(asdict(record), indent=1) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record
