"""AudioCaps (Kim et al., 2019) -> rows of the study's manifests.

``train.csv``, ``test.csv`` and optionally ``val.csv`` with header
``audiocap_id,youtube_id,start_time,caption``; audio named
``<youtube id>_<start_time>.<ext>`` or ``<audiocap_id>.<ext>``. Manifests
have the header ``path,caption``, one row per audio clip with its first
caption: val and test list five captions per clip, and a clip repeated in
a split would be mixed with itself in the study's test mixtures. The
further captions are counted in the summary.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .common import (
    MANIFEST_SPLITS,
    DatasetLayout,
    LayoutError,
    Problems,
    Row,
    csv_header,
    find_named,
    start_seconds,
)

AUDIOCAPS_COLUMNS: tuple[str, ...] = ("audiocap_id", "youtube_id", "start_time", "caption")


def _rows(folder: Path, problems: Problems) -> list[Row]:
    rows = []
    for split in MANIFEST_SPLITS:
        meta = folder / f"{split}.csv"
        if not meta.is_file():
            continue  # val is optional (the caller checks train and test)
        with open(meta, newline="", encoding="utf-8-sig") as f:
            table = list(csv.reader(f))
        lines = [(i + 1, r) for i, r in enumerate(table) if r and any(c.strip() for c in r)]
        header = [c.strip().lower() for c in lines[0][1]] if lines else []
        if tuple(header) != AUDIOCAPS_COLUMNS:
            raise LayoutError(
                f"{meta} line {lines[0][0] if lines else 1}: header is {header}, expected {list(AUDIOCAPS_COLUMNS)}"
            )
        for line, row in lines[1:]:
            if len(row) != len(AUDIOCAPS_COLUMNS):
                problems.report(
                    meta,
                    line,
                    f"has {len(row)} column(s) {row}, expected {len(AUDIOCAPS_COLUMNS)} "
                    f"({','.join(AUDIOCAPS_COLUMNS)}); quote captions that contain commas",
                )
                continue
            cap_id, vid, start, caption = (c.strip() for c in row)
            if not cap_id or not vid:
                problems.report(meta, line, f"has an empty audiocap_id or youtube_id ({row})")
                continue
            try:
                seconds = start_seconds(start)
            except ValueError:
                problems.report(meta, line, f"start_time {start!r} of {vid} is not a whole number of seconds")
                continue
            if not caption:
                problems.report(meta, line, f"has an empty caption (audiocap_id {cap_id}, YouTube id {vid})")
                continue
            stems = (f"{vid}_{seconds}", f"{vid}_{seconds:06d}", cap_id)
            rows.append(Row(split, caption, ("audiocaps", vid, str(seconds)), stems, meta, line))
    return rows


def _find(root: Path) -> list[Path]:
    """The ``train.csv`` of every folder holding AudioCaps' train.csv (by its header) and a test.csv."""
    return [
        p
        for p in find_named(root, "train.csv")
        if tuple(csv_header(p) or ()) == AUDIOCAPS_COLUMNS and (p.parent / "test.csv").is_file()
    ]


def _metadata(root: Path) -> list[Path]:
    """The split files of the shallowest AudioCaps folder."""
    folders = [p.parent for p in _find(root)[:1]]
    return [f / f"{s}.csv" for f in folders for s in MANIFEST_SPLITS if (f / f"{s}.csv").is_file()]


def _read(metadata: list[Path], problems: Problems) -> tuple[list[Row], list[str]]:
    return _rows(metadata[0].parent, problems), []


AUDIOCAPS = DatasetLayout(
    name="AudioCaps",
    kind="caption",
    wanted=f"train.csv and test.csv with header '{','.join(AUDIOCAPS_COLUMNS)}'",
    file_patterns="<youtube id>_<start_time>.<ext> or <audiocap_id>.<ext>",
    find=_find,
    metadata=_metadata,
    read=_read,
)
