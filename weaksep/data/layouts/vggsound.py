"""VGGSound (Chen et al., 2020) -> rows of the study's manifests.

``vggsound.csv`` without header, rows ``youtube_id,start_seconds,label,split``
(split ``train`` or ``test``; labels with commas quoted); audio named
``<youtube id>_<start padded to 6 digits>.<ext>`` (``---g-f_I2yQ_000001.wav``)
or ``<youtube id>_<start>.<ext>``. Every label is valid (309 classes).
Validation is carved from train by a hash of the YouTube id (5 %,
:func:`vggsound_split`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from .common import DatasetLayout, Problems, Row, find_named, hash_fraction, start_seconds

VGGSOUND_FILE = "vggsound.csv"
VGGSOUND_COLUMNS: tuple[str, ...] = ("youtube_id", "start_seconds", "label", "split")
VGGSOUND_VAL_FRACTION = 0.05


def vggsound_split(youtube_id: str, split: str) -> str:
    """Split of a VGGSound clip: ``test`` stays test; 5 % of train videos (by id hash) become val."""
    if split == "train" and hash_fraction(f"vggsound:{youtube_id}") < VGGSOUND_VAL_FRACTION:
        return "val"
    return split


def _rows(meta: Path, problems: Problems) -> list[Row]:
    rows = []
    with open(meta, newline="", encoding="utf-8-sig") as f:
        table = list(csv.reader(f))
    for i, row in enumerate(table):
        line = i + 1
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(VGGSOUND_COLUMNS):
            problems.report(
                meta,
                line,
                f"has {len(row)} column(s) {row}, expected {len(VGGSOUND_COLUMNS)} "
                f"({','.join(VGGSOUND_COLUMNS)}, no header row)",
            )
            continue
        vid, start, label, split = (c.strip() for c in row)
        if not vid:
            problems.report(meta, line, "has an empty YouTube id")
            continue
        try:
            seconds = start_seconds(start)
        except ValueError:
            problems.report(
                meta,
                line,
                f"start_seconds {start!r} of {vid} is not a whole number of seconds (vggsound.csv has no header row)",
            )
            continue
        if not label:
            problems.report(meta, line, f"has an empty label (YouTube id {vid})")
            continue
        if split not in ("train", "test"):
            problems.report(meta, line, f"split {split!r} of {vid} is not 'train' or 'test'")
            continue
        stems = (f"{vid}_{seconds:06d}", f"{vid}_{seconds}")
        rows.append(Row(vggsound_split(vid, split), label, ("vggsound", vid, str(seconds)), stems, meta, line))
    return rows


def _find(root: Path) -> list[Path]:
    return find_named(root, VGGSOUND_FILE)


def _metadata(root: Path) -> list[Path]:
    return _find(root)[:1]  # the shallowest list: a second copy deeper down is not read


def _read(metadata: list[Path], problems: Problems) -> tuple[list[Row], list[str]]:
    return _rows(metadata[0], problems), []


VGGSOUND = DatasetLayout(
    name="VGGSound",
    kind="label",
    wanted=VGGSOUND_FILE,
    file_patterns="<youtube id>_<start, 6 digits>.<ext> or <youtube id>_<start>.<ext>",
    find=_find,
    metadata=_metadata,
    read=_read,
)
