"""Detect a dataset root's layout and write its manifests ``train.csv``, ``val.csv``, ``test.csv``, with a summary.

The rows of the layout's metadata (``music.py``, ``vggsound.py``,
``audiocaps.py``) are matched to the audio files under the root; what was
kept, missing and bad is counted in a :class:`LayoutReport`, and the written
manifests are cached (see :mod:`weaksep.data.layouts`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...io import atomic_write_text
from .audiocaps import AUDIOCAPS
from .common import (
    AUDIO_EXTENSIONS,
    MANIFEST_SPLITS,
    SEARCH_DEPTH,
    AudioIndex,
    DatasetLayout,
    LayoutError,
    Problems,
    Row,
    audio_problem,
    csv_header,
    find_audio,
    index_audio,
)
from .music import MUSIC
from .vggsound import VGGSOUND

DATASETS: dict[str, DatasetLayout] = {"music": MUSIC, "vggsound": VGGSOUND, "audiocaps": AUDIOCAPS}
DATASET_LAYOUTS: tuple[str, ...] = tuple(DATASETS)
LAYOUTS: tuple[str, ...] = ("manifests", *DATASET_LAYOUTS)
LAYOUTS_VERSION = 1  # bump when the written manifests change: cached ones are rewritten
MANIFEST_HEADERS: tuple[tuple[str, str], ...] = (("path", "label"), ("path", "caption"))
PREPARED_FILE = "prepared.json"


@dataclass
class LayoutReport:
    """What ``prepare_layout`` made of a dataset root.

    ``kept`` / ``missing`` count clips per split (missing: listed in the
    metadata, no audio file); ``skipped`` are the messages of bad rows left
    out with ``skip_bad``; ``notes`` are further counts for the summary line
    (duets set aside, further captions, unreadable downloads).
    """

    layout: str
    root: str
    out: str
    kept: dict[str, int]
    missing: dict[str, int]
    classes: int | None
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cached: bool = False

    def summary(self) -> str:
        """One line: kept and missing per split, classes, notes, where the manifests are."""
        name = DATASETS[self.layout].name if self.layout in DATASETS else self.layout
        kept = ", ".join(f"{s} {self.kept.get(s, 0)}" for s in MANIFEST_SPLITS)
        missing = ", ".join(f"{s} {self.missing.get(s, 0)}" for s in MANIFEST_SPLITS)
        parts = [f"{name} at {self.root}: kept {kept} clips; missing audio {missing}"]
        if self.classes is not None:
            parts.append(f"{self.classes} classes")
        if self.skipped:
            parts.append(f"{len(self.skipped)} bad row(s) skipped")
        parts += self.notes
        return "; ".join(parts) + f" -> {self.out}" + (" (cached)" if self.cached else "")


# --------------------------------------------------------------------------- detecting
def _is_manifest_folder(root: Path) -> bool:
    return (
        all((root / f"{s}.csv").is_file() for s in ("train", "test"))
        and tuple(csv_header(root / "train.csv") or ()) in MANIFEST_HEADERS
    )


def detect_layout(root: str | Path) -> str:
    """The layout of a dataset root: "manifests", "music", "vggsound" or "audiocaps".

    Raises ``LayoutError`` listing what was looked for when none is found, or
    naming the metadata files when several datasets are found.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(
            f"dataset root {root} is not a folder; expected a manifest folder or a MUSIC, VGGSound or AudioCaps root"
        )
    if _is_manifest_folder(root):
        return "manifests"
    found = {layout: files for layout, d in DATASETS.items() if (files := d.find(root))}
    if len(found) > 1:
        listed = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in found.items())
        raise LayoutError(
            f"dataset root {root} holds the metadata of several datasets ({listed}); name one with layout= (--layout)"
        )
    if found:
        return next(iter(found))
    hint = ""
    if (root / "train.csv").is_file():
        hint = f" ({root / 'train.csv'} has header {csv_header(root / 'train.csv')}, which is none of these)"
    looked_for = "; ".join(f"{d.name} ({d.wanted})" for d in DATASETS.values())
    raise LayoutError(
        f"cannot recognise the dataset layout of {root}: looked in {root} and its subfolders down to "
        f"{SEARCH_DEPTH} levels for: manifests (train.csv and test.csv with header 'path,label' or "
        f"'path,caption', in {root} itself); {looked_for}{hint}"
    )


# --------------------------------------------------------------------------- preparing
def _metadata(dataset: DatasetLayout, root: Path) -> list[Path]:
    """The metadata files of ``dataset`` under ``root`` (``LayoutError`` naming what was looked for if none)."""
    found = dataset.metadata(root)
    if not found:
        raise LayoutError(
            f"no {dataset.name} metadata under {root}: looked for {dataset.wanted} in {root} "
            f"and its subfolders down to {SEARCH_DEPTH} levels"
        )
    return found


def _inputs_signature(
    layout: str, skip_bad: bool, root: Path, out: Path, metadata: list[Path], index: AudioIndex
) -> str:
    h = hashlib.sha256(json.dumps([LAYOUTS_VERSION, layout, skip_bad, str(root), str(out)]).encode())
    for p in metadata:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    h.update(index.signature.encode())
    return h.hexdigest()[:20]


def _manifest_text(kind: str, rows: list[tuple[Path, str]], out: Path, root: Path) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", kind])
    inside = out == root or root in out.parents
    for path, text in rows:
        ref = str(path)
        if inside:
            try:
                ref = Path(os.path.relpath(path, out)).as_posix()
            except ValueError:  # another drive (Windows): keep the absolute path
                pass
        w.writerow([ref, text])
    return buf.getvalue()


def prepared_report(out: str | Path, signature: str | None = None) -> LayoutReport | None:
    """The report saved beside manifests that ``prepare_layout`` wrote into ``out`` (None: none, or
    unreadable, or, with ``signature``, made from other inputs)."""
    out = Path(out)
    try:
        saved = json.loads((out / PREPARED_FILE).read_text())
    except (OSError, ValueError):
        return None
    if signature is not None and saved.get("signature") != signature:
        return None
    if not all((out / f"{s}.csv").is_file() for s in MANIFEST_SPLITS):
        return None
    try:
        return LayoutReport(**{**saved["report"], "cached": True})
    except (KeyError, TypeError):
        return None


def prepare_layout(
    root: str | Path, out: str | Path, layout: str | None = None, skip_bad: bool = False
) -> LayoutReport:
    """Write ``out/train.csv``, ``val.csv``, ``test.csv`` for the dataset at ``root`` and report.

    ``layout`` is "music", "vggsound" or "audiocaps" (default: detected). See
    :mod:`weaksep.data.layouts` for each layout and for what is kept, missing
    and bad. Raises ``LayoutError`` for bad metadata or audio (unless
    ``skip_bad``), and when train or test would have no clip at all.
    """
    root = Path(root).resolve()
    out = Path(out).resolve()
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown dataset layout {layout!r}; expected one of {list(DATASET_LAYOUTS)}")
    if not root.is_dir():
        raise LayoutError(f"dataset root {root} is not a folder")
    layout = layout or detect_layout(root)
    if layout == "manifests":
        raise LayoutError(f"{root} already holds manifests (train.csv, test.csv); use it as it is")
    dataset = DATASETS[layout]
    metadata = _metadata(dataset, root)
    if out == root or any(p.parent == out for p in metadata):
        raise LayoutError(
            f"manifest folder {out} is the dataset root or holds its metadata; "
            f"expected a folder of its own (e.g. {root / 'manifests'})"
        )
    index = index_audio(root)
    signature = _inputs_signature(layout, skip_bad, root, out, metadata, index)
    cached = prepared_report(out, signature)
    if cached is not None:
        return cached

    problems = Problems(skip_bad)
    rows, notes = dataset.read(metadata, problems)
    clips: dict[tuple[str, ...], list[Row]] = {}
    for r in rows:
        clips.setdefault(r.key, []).append(r)
    kept: dict[str, list[tuple[Path, str]]] = {s: [] for s in MANIFEST_SPLITS}
    missing: Counter = Counter()
    for group in clips.values():
        first = group[0]
        stems = tuple(dict.fromkeys(s for r in group for s in r.stems))
        path = find_audio(index, stems, first.folder)
        if path is None:
            missing[first.split] += 1
            continue
        problem = audio_problem(path)
        if problem is not None:
            problems.report(first.meta, first.line, f"audio file {path} of this row {problem}")
            continue
        kept[first.split].append((path, first.text))
    repeats = len(rows) - len(clips)
    if repeats:
        # AudioCaps lists several captions per clip; elsewhere a repeat is a duplicated row.
        what = "further captions of listed clips" if dataset.kind == "caption" else "repeated rows of listed clips"
        notes.append(f"{repeats} {what} not used")
    if index.unreadable:
        exts = "/".join(sorted(index.unreadable))
        notes.append(f"{sum(index.unreadable.values())} {exts} files not used (soundfile cannot read them)")
    empty = [s for s in ("train", "test") if not kept[s]]
    if empty:
        raise LayoutError(
            f"{dataset.name} at {root}: no usable audio for split(s) {empty} "
            f"({', '.join(f'{s}: {missing[s]} listed without a file' for s in empty)}); looked for files named "
            f"{dataset.file_patterns} with an extension of {'/'.join(e[1:] for e in AUDIO_EXTENSIONS)} "
            f"anywhere under {root}" + (f"; {notes[-1]}: convert them to wav or flac" if index.unreadable else "")
        )

    labels = {text for s in MANIFEST_SPLITS for _, text in kept[s]}
    report = LayoutReport(
        layout=layout,
        root=str(root),
        out=str(out),
        kept={s: len(kept[s]) for s in MANIFEST_SPLITS},
        missing={s: missing[s] for s in MANIFEST_SPLITS},
        classes=None if dataset.kind == "caption" else len(labels),
        skipped=problems.skipped,
        notes=notes,
    )
    for s in MANIFEST_SPLITS:
        atomic_write_text(out / f"{s}.csv", _manifest_text(dataset.kind, kept[s], out, root))
    # Written last: its presence with a matching signature means the manifests are complete.
    atomic_write_text(
        out / PREPARED_FILE, json.dumps({"signature": signature, "report": asdict(report)}, indent=1) + "\n"
    )
    return report


def prepare_data(
    root: str | Path,
    out: str | Path,
    layout: str | None = None,
    skip_bad: bool = False,
    *,
    echo: Callable[[str], None] | None = print,
) -> Path:
    """A folder of manifests for ``root``: ``root`` itself if it holds manifests, else ``out`` written by
    :func:`prepare_layout`, whose summary line ``echo`` prints (``None``: quiet).

    Bad rows skipped with ``skip_bad`` are listed in a warning.
    """
    root = Path(root)
    layout = layout or detect_layout(root)
    if layout == "manifests":
        if not _is_manifest_folder(root):
            raise LayoutError(
                f"{root} does not hold manifests: expected train.csv and test.csv with header "
                f"'path,label' or 'path,caption'"
            )
        return root
    report = prepare_layout(root, out, layout, skip_bad)
    if echo is not None:
        echo(report.summary())
    if report.skipped:
        listed = "; ".join(report.skipped[:5])
        more = f" (and {len(report.skipped) - 5} more)" if len(report.skipped) > 5 else ""
        warnings.warn(
            f"{DATASETS[layout].name} at {report.root}: skipped {len(report.skipped)} bad row(s): {listed}{more}",
            stacklevel=2,
        )
    return Path(report.out)
