"""MUSIC (Zhao et al., 2018, "The Sound of Pixels") -> rows of the study's manifests.

``MUSIC_solo_videos.json`` and/or ``MUSIC21_solo_videos.json``, each
``{"videos": {"<class>": ["<youtube id>", ...]}}``; audio at
``.../<class>/<youtube id>.<ext>`` (the class folder spelt as in the JSON,
``acoustic_guitar``, or with spaces). Labels are the class with spaces,
``acoustic_guitar`` -> "acoustic guitar", the study's names for the 11
MUSIC classes; every class the JSON lists is kept (MUSIC21 adds 10), and
folders of classes the JSON does not list are ignored.
``MUSIC_duet_videos.json`` lists mixtures of two instruments: they are not
single sources, so they are counted in the summary and left out. MUSIC has
no official split: a video goes to train / val / test by a hash of its
YouTube id (80 / 10 / 10 %, :func:`music_split`), the same on every machine
and for every download state, and a video listed under two classes stays
in one split.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..classes import slug
from .common import DatasetLayout, LayoutError, Problems, Row, find_named, hash_fraction

MUSIC_SOLO_FILES: tuple[str, ...] = ("MUSIC_solo_videos.json", "MUSIC21_solo_videos.json")
MUSIC_DUET_FILE = "MUSIC_duet_videos.json"
MUSIC_SPLIT: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}


def music_split(video_id: str) -> str:
    """Split of a MUSIC video: train / val / test for 80 / 10 / 10 % of the hash of its id."""
    u = hash_fraction(f"music:{video_id}")
    if u < MUSIC_SPLIT["train"]:
        return "train"
    return "val" if u < MUSIC_SPLIT["train"] + MUSIC_SPLIT["val"] else "test"


def _json_line(text: str, needle: str, start: int = 0) -> tuple[int | None, int]:
    """Line (1-based) of the first ``needle`` at or after ``start`` in ``text``, and its offset."""
    pos = text.find(needle, start)
    if pos < 0:
        return None, start
    return text.count("\n", 0, pos) + 1, pos


def _solo_rows(meta: Path, problems: Problems) -> list[Row]:
    text = meta.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LayoutError(f"{meta} line {e.lineno}: not valid JSON ({e.msg})") from e
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise LayoutError(
            f'{meta}: expected {{"videos": {{"<class>": ["<youtube id>", ...]}}}}, found top level {found}'
        )
    rows = []
    # json.loads keeps no line numbers: each class and id is found in the text, in order, for the messages.
    _, cursor = _json_line(text, '"videos"')
    for cls, ids in videos.items():
        line, cursor = _json_line(text, json.dumps(cls), cursor)
        if not cls.strip():
            problems.report(meta, line, "has an empty class name")
            continue
        if not isinstance(ids, list):
            problems.report(meta, line, f"class {cls!r} maps to {type(ids).__name__}, expected a list of YouTube ids")
            continue
        label = cls.replace("_", " ").strip()
        pos = cursor
        for vid in ids:
            vline, found = _json_line(text, json.dumps(vid), pos) if isinstance(vid, str) else (line, pos)
            pos = max(pos, found)
            if not isinstance(vid, str) or not vid.strip():
                problems.report(meta, vline, f"class {cls!r} lists an empty or non-text video id {vid!r}")
                continue
            vid = vid.strip()
            rows.append(Row(music_split(vid), label, ("music", slug(cls), vid), (vid,), meta, vline, slug(cls)))
        cursor = pos  # the next class key comes after this class's ids
    return rows


def _duet_notes(duet_files: list[Path]) -> list[str]:
    """Notes on the duet videos: how many are listed (they are mixtures, never manifest rows)."""
    notes = []
    for meta in duet_files:
        try:
            videos = json.loads(meta.read_text(encoding="utf-8-sig")).get("videos", {})
            n = sum(len(v) for v in videos.values() if isinstance(v, list))
        except (ValueError, AttributeError, OSError) as e:
            raise LayoutError(f'{meta}: expected {{"videos": {{"<class> <class>": [...]}}}} ({e})') from e
        notes.append(f"{n} duet videos of {meta.name} set aside (mixtures, not single sources)")
    return notes


def _find(root: Path) -> list[Path]:
    return [p for name in MUSIC_SOLO_FILES for p in find_named(root, name)]


def _metadata(root: Path) -> list[Path]:
    """The solo lists and the duet lists (read for the summary only); none without a solo list."""
    solo = _find(root)
    return [*solo, *find_named(root, MUSIC_DUET_FILE)] if solo else []


def _read(metadata: list[Path], problems: Problems) -> tuple[list[Row], list[str]]:
    rows = [r for p in metadata if p.name in MUSIC_SOLO_FILES for r in _solo_rows(p, problems)]
    return rows, _duet_notes([p for p in metadata if p.name == MUSIC_DUET_FILE])


MUSIC = DatasetLayout(
    name="MUSIC",
    kind="label",
    wanted=" or ".join(MUSIC_SOLO_FILES),
    file_patterns="<class>/<youtube id>.<ext>",
    find=_find,
    metadata=_metadata,
    read=_read,
)
