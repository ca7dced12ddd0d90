"""What the dataset layouts share: finding metadata and audio files, bad-row bookkeeping, hash splits.

A layout module (``music.py``, ``vggsound.py``, ``audiocaps.py``) turns its
metadata files into :class:`Row` s and describes itself with a
:class:`DatasetLayout`; ``prepare.py`` matches the rows to the audio index of
:func:`index_audio` and writes the manifests.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from ..classes import slug
from ..manifest import ManifestError

MANIFEST_SPLITS: tuple[str, ...] = ("train", "val", "test")
# Extensions whose files soundfile (libsndfile >= 1.1) opens; the first wins
# when one clip exists in several formats.
AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aif",
    ".aiff",
    ".aifc",
    ".au",
    ".caf",
    ".w64",
    ".rf64",
)
# What YouTube downloaders write and soundfile cannot read: named in the
# summary, so that "everything is missing" has its explanation.
UNREADABLE_EXTENSIONS: tuple[str, ...] = (".m4a", ".mp4", ".webm", ".aac", ".mkv", ".wma")
SEARCH_DEPTH = 2  # metadata files are looked for this many folder levels below the root


class LayoutError(ManifestError):
    """Dataset metadata or audio that cannot be used; the message names the file, line and problem."""


def hash_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (first 8 bytes of its SHA-256), for splits by id."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def start_seconds(text: str) -> int:
    """A start time written as a whole, non-negative number of seconds ("30", "30.0"); ``ValueError`` otherwise."""
    value = float(text)
    if not value.is_integer() or value < 0:
        raise ValueError(text)
    return int(value)


# --------------------------------------------------------------------------- rows
class Problems:
    """Bad rows: raised at once, or collected when ``skip_bad``."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: list[str] = []

    def report(self, meta: Path, line: int | None, reason: str) -> None:
        where = f"{meta} line {line}" if line else str(meta)
        message = f"{where}: {reason}"
        if not self.skip_bad:
            raise LayoutError(f"{message}; fix or remove it, or pass skip_bad=True (--skip-bad) to leave it out")
        self.skipped.append(message)


@dataclass
class Row:
    """One clip a metadata file lists."""

    split: str
    text: str  # label or caption
    key: tuple[str, ...]  # identity of the clip: rows with the same key are one clip
    stems: tuple[str, ...]  # file names (without extension) the audio may have
    meta: Path
    line: int | None
    folder: str | None = None  # slug of the folder the file must sit in (MUSIC's class folders)


@dataclass(frozen=True)
class DatasetLayout:
    """One public dataset layout, as ``prepare.py`` uses it.

    ``find(root)`` lists the metadata files that identify the dataset (all of
    them, for detection); ``metadata(root)`` those to read (empty if the
    dataset is not there); ``read(metadata, problems)`` gives the rows they
    list and notes for the summary line.
    """

    name: str  # as in messages: "MUSIC"
    kind: str  # the manifests' second column: "label" or "caption"
    wanted: str  # the metadata files looked for, as in messages
    file_patterns: str  # the audio file names looked for, as in messages
    find: Callable[[Path], list[Path]]
    metadata: Callable[[Path], list[Path]]
    read: Callable[[list[Path], Problems], tuple[list[Row], list[str]]]


# --------------------------------------------------------------------------- metadata files
def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def find_named(root: Path, name: str, depth: int = SEARCH_DEPTH) -> list[Path]:
    """Files called ``name`` in ``root`` and its non-hidden subfolders down to ``depth`` levels, shallowest first."""
    found, level = [], [root]
    for d in range(depth + 1):
        found += [f / name for f in level if (f / name).is_file()]
        if d < depth:
            level = [s for f in level for s in _subfolders(f)]
    return found


def csv_header(path: Path) -> list[str] | None:
    """The first non-blank row of a CSV, stripped and lower-cased (``None`` if unreadable or empty)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for row in csv.reader(f):
                if row and any(c.strip() for c in row):
                    return [c.strip().lower() for c in row]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


# --------------------------------------------------------------------------- audio files
@dataclass
class AudioIndex:
    """Every audio file under a root, by file stem, and a signature of them all."""

    by_stem: dict[str, list[Path]]
    unreadable: Counter  # extension -> number of files soundfile cannot read
    signature: str  # changes when an audio file is added, removed or rewritten


def index_audio(root: Path) -> AudioIndex:
    """Walk ``root`` once (hidden entries left out, each folder once even through symlinks)."""
    by_stem: dict[str, list[Path]] = {}
    unreadable: Counter = Counter()
    digest = hashlib.sha256()
    stack, seen = [root], set()
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:  # a symlink back up the tree: walk each folder once
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                subdirs.append(Path(e.path))
                continue
            stem, ext = os.path.splitext(e.name)
            ext = ext.lower()
            if ext in AUDIO_EXTENSIONS:
                by_stem.setdefault(stem, []).append(Path(e.path))
                st = e.stat()
                digest.update(f"{e.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
            elif ext in UNREADABLE_EXTENSIONS:
                unreadable[ext] += 1
        stack.extend(reversed(subdirs))
    return AudioIndex(by_stem, unreadable, digest.hexdigest())


def find_audio(index: AudioIndex, stems: tuple[str, ...], folder: str | None) -> Path | None:
    """The audio file of a clip: the first stem that has a file (in ``folder`` if given), preferred format first."""
    for stem in stems:
        candidates = [p for p in index.by_stem.get(stem, []) if folder is None or slug(p.parent.name) == folder]
        if candidates:
            return min(candidates, key=lambda p: (AUDIO_EXTENSIONS.index(p.suffix.lower()), str(p)))
    return None


def audio_problem(path: Path) -> str | None:
    """Why soundfile cannot use ``path`` (from its header only), or ``None``."""
    try:
        info = sf.info(str(path))
    except Exception as e:  # LibsndfileError, RuntimeError, TypeError ... depending on the version
        # LibsndfileError's str() repeats the path; its error_string is the reason alone.
        reason = getattr(e, "error_string", None) or str(e).strip()
        return f"is not readable by soundfile ({type(e).__name__}: {reason})"
    if info.frames <= 0:
        return "has zero length (no samples)"
    return None
