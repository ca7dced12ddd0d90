"""A dataset as users have it on disk -> the study's manifests ``train.csv``, ``val.csv``, ``test.csv``.

Three public layouts are read: the dataset's own metadata plus a folder of
downloaded audio somewhere under the dataset root (any depth; any extension
soundfile reads: wav, flac, ogg, mp3, aiff ...). The metadata files are looked
for in the root and in its subfolders down to two levels.

MUSIC (Zhao et al., 2018, "The Sound of Pixels")
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
VGGSound (Chen et al., 2020)
    ``vggsound.csv`` without header, rows ``youtube_id,start_seconds,label,split``
    (split ``train`` or ``test``; labels with commas quoted); audio named
    ``<youtube id>_<start padded to 6 digits>.<ext>`` (``---g-f_I2yQ_000001.wav``)
    or ``<youtube id>_<start>.<ext>``. Every label is valid (309 classes).
    Validation is carved from train by a hash of the YouTube id (5 %,
    :func:`vggsound_split`).
AudioCaps (Kim et al., 2019)
    ``train.csv``, ``test.csv`` and optionally ``val.csv`` with header
    ``audiocap_id,youtube_id,start_time,caption``; audio named
    ``<youtube id>_<start_time>.<ext>`` or ``<audiocap_id>.<ext>``. Manifests
    have the header ``path,caption``, one row per audio clip with its first
    caption: val and test list five captions per clip, and a clip repeated in
    a split would be mixed with itself in the study's test mixtures. The
    further captions are counted in the summary.

Missing audio is the norm (a fifth of VGGSound's videos are gone): a clip the
metadata lists without an audio file is counted per split and left out, and
one summary line per dataset says what was kept and what was missing. A bad
row (empty label or caption, unparsable start time, unknown split, wrong
number of columns) or a corrupt audio file (soundfile cannot read its header,
checked with the cheap ``soundfile.info``, not by decoding) raises
``LayoutError`` naming the metadata file and line and the audio file, or with
``skip_bad=True`` is left out, counted in the summary and listed in a warning.
Silent clips are only found when the study loads the audio
(:func:`weaksep.data.load_manifest`).

Paths in the written manifests are relative to the manifest folder when that
folder lies inside the dataset root (dataset and manifests move together),
else absolute. ``prepare_data`` caches: a second call with unchanged metadata
and audio files (names, sizes, times) reads back its ``prepared.json``.
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

import soundfile as sf

from ..io import atomic_write_text
from .classes import slug
from .manifest import ManifestError

LAYOUTS: tuple[str, ...] = ("manifests", "music", "vggsound", "audiocaps")
DATASET_LAYOUTS: tuple[str, ...] = ("music", "vggsound", "audiocaps")
MANIFEST_SPLITS: tuple[str, ...] = ("train", "val", "test")
LAYOUTS_VERSION = 1  # bump when the written manifests change: cached ones are rewritten

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

MUSIC_SOLO_FILES: tuple[str, ...] = ("MUSIC_solo_videos.json", "MUSIC21_solo_videos.json")
MUSIC_DUET_FILE = "MUSIC_duet_videos.json"
MUSIC_SPLIT: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}
VGGSOUND_FILE = "vggsound.csv"
VGGSOUND_COLUMNS: tuple[str, ...] = ("youtube_id", "start_seconds", "label", "split")
VGGSOUND_VAL_FRACTION = 0.05
AUDIOCAPS_COLUMNS: tuple[str, ...] = ("audiocap_id", "youtube_id", "start_time", "caption")
MANIFEST_HEADERS: tuple[tuple[str, str], ...] = (("path", "label"), ("path", "caption"))
PREPARED_FILE = "prepared.json"
DATASET_NAMES: dict[str, str] = {"music": "MUSIC", "vggsound": "VGGSound", "audiocaps": "AudioCaps"}


class LayoutError(ManifestError):
    """Dataset metadata or audio that cannot be used; the message names the file, line and problem."""


# --------------------------------------------------------------------------- splits
def hash_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (first 8 bytes of its SHA-256), for splits by id."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def music_split(video_id: str) -> str:
    """Split of a MUSIC video: train / val / test for 80 / 10 / 10 % of the hash of its id."""
    u = hash_fraction(f"music:{video_id}")
    if u < MUSIC_SPLIT["train"]:
        return "train"
    return "val" if u < MUSIC_SPLIT["train"] + MUSIC_SPLIT["val"] else "test"


def vggsound_split(youtube_id: str, split: str) -> str:
    """Split of a VGGSound clip: ``test`` stays test; 5 % of train videos (by id hash) become val."""
    if split == "train" and hash_fraction(f"vggsound:{youtube_id}") < VGGSOUND_VAL_FRACTION:
        return "val"
    return split


# --------------------------------------------------------------------------- report
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
        name = DATASET_NAMES.get(self.layout, self.layout)
        kept = ", ".join(f"{s} {self.kept.get(s, 0)}" for s in MANIFEST_SPLITS)
        missing = ", ".join(f"{s} {self.missing.get(s, 0)}" for s in MANIFEST_SPLITS)
        parts = [f"{name} at {self.root}: kept {kept} clips; missing audio {missing}"]
        if self.classes is not None:
            parts.append(f"{self.classes} classes")
        if self.skipped:
            parts.append(f"{len(self.skipped)} bad row(s) skipped")
        parts += self.notes
        return "; ".join(parts) + f" -> {self.out}" + (" (cached)" if self.cached else "")


class _Problems:
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
class _Row:
    """One clip a metadata file lists."""

    split: str
    text: str  # label or caption
    key: tuple[str, ...]  # identity of the clip: rows with the same key are one clip
    stems: tuple[str, ...]  # file names (without extension) the audio may have
    meta: Path
    line: int | None
    folder: str | None = None  # slug of the folder the file must sit in (MUSIC's class folders)


# --------------------------------------------------------------------------- finding files
def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def _find_named(root: Path, name: str, depth: int = SEARCH_DEPTH) -> list[Path]:
    """Files called ``name`` in ``root`` and its non-hidden subfolders down to ``depth`` levels, shallowest first."""
    found, level = [], [root]
    for d in range(depth + 1):
        found += [f / name for f in level if (f / name).is_file()]
        if d < depth:
            level = [s for f in level for s in _subfolders(f)]
    return found


def _csv_header(path: Path) -> list[str] | None:
    """The first non-blank row of a CSV, stripped and lower-cased (``None`` if unreadable or empty)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for row in csv.reader(f):
                if row and any(c.strip() for c in row):
                    return [c.strip().lower() for c in row]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def _is_manifest_folder(root: Path) -> bool:
    return (
        all((root / f"{s}.csv").is_file() for s in ("train", "test"))
        and tuple(_csv_header(root / "train.csv") or ()) in MANIFEST_HEADERS
    )


def _audiocaps_folders(root: Path) -> list[Path]:
    return [
        p.parent
        for p in _find_named(root, "train.csv")
        if tuple(_csv_header(p) or ()) == AUDIOCAPS_COLUMNS and (p.parent / "test.csv").is_file()
    ]


def _looked_for(root: Path) -> str:
    return (
        f"looked in {root} and its subfolders down to {SEARCH_DEPTH} levels for: manifests (train.csv and "
        f"test.csv with header 'path,label' or 'path,caption', in {root} itself); MUSIC "
        f"({' or '.join(MUSIC_SOLO_FILES)}); VGGSound ({VGGSOUND_FILE}); AudioCaps (train.csv and test.csv "
        f"with header '{','.join(AUDIOCAPS_COLUMNS)}')"
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
    found: dict[str, list[Path]] = {}
    music = [p for name in MUSIC_SOLO_FILES for p in _find_named(root, name)]
    if music:
        found["music"] = music
    vgg = _find_named(root, VGGSOUND_FILE)
    if vgg:
        found["vggsound"] = vgg
    caps = _audiocaps_folders(root)
    if caps:
        found["audiocaps"] = [c / "train.csv" for c in caps]
    if len(found) > 1:
        listed = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in found.items())
        raise LayoutError(
            f"dataset root {root} holds the metadata of several datasets ({listed}); name one with layout= (--layout)"
        )
    if found:
        return next(iter(found))
    hint = ""
    if (root / "train.csv").is_file():
        hint = f" ({root / 'train.csv'} has header {_csv_header(root / 'train.csv')}, which is none of these)"
    raise LayoutError(f"cannot recognise the dataset layout of {root}: {_looked_for(root)}{hint}")


# --------------------------------------------------------------------------- audio index
@dataclass
class _AudioIndex:
    """Every audio file under a root, by file stem, and a signature of them all."""

    by_stem: dict[str, list[Path]]
    unreadable: Counter
    signature: str


def _index_audio(root: Path) -> _AudioIndex:
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
    return _AudioIndex(by_stem, unreadable, digest.hexdigest())


def _find_audio(index: _AudioIndex, stems: tuple[str, ...], folder: str | None) -> Path | None:
    """The audio file of a clip: the first stem that has a file (in ``folder`` if given), preferred format first."""
    for stem in stems:
        candidates = [p for p in index.by_stem.get(stem, []) if folder is None or slug(p.parent.name) == folder]
        if candidates:
            return min(candidates, key=lambda p: (AUDIO_EXTENSIONS.index(p.suffix.lower()), str(p)))
    return None


def _audio_problem(path: Path) -> str | None:
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


# --------------------------------------------------------------------------- metadata readers
def _json_line(text: str, needle: str, start: int = 0) -> tuple[int | None, int]:
    """Line (1-based) of the first ``needle`` at or after ``start`` in ``text``, and its offset."""
    pos = text.find(needle, start)
    if pos < 0:
        return None, start
    return text.count("\n", 0, pos) + 1, pos


def _music_rows(meta: Path, problems: _Problems) -> list[_Row]:
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
            rows.append(_Row(music_split(vid), label, ("music", slug(cls), vid), (vid,), meta, vline, slug(cls)))
        cursor = pos  # the next class key comes after this class's ids
    return rows


def _music_duets(root: Path) -> list[str]:
    """Notes on the duet videos: how many are listed (they are mixtures, never manifest rows)."""
    notes = []
    for meta in _find_named(root, MUSIC_DUET_FILE):
        try:
            videos = json.loads(meta.read_text(encoding="utf-8-sig")).get("videos", {})
            n = sum(len(v) for v in videos.values() if isinstance(v, list))
        except (ValueError, AttributeError, OSError) as e:
            raise LayoutError(f'{meta}: expected {{"videos": {{"<class> <class>": [...]}}}} ({e})') from e
        notes.append(f"{n} duet videos of {meta.name} set aside (mixtures, not single sources)")
    return notes


def _start_seconds(text: str) -> int:
    value = float(text)
    if not value.is_integer() or value < 0:
        raise ValueError(text)
    return int(value)


def _vggsound_rows(meta: Path, problems: _Problems) -> list[_Row]:
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
            seconds = _start_seconds(start)
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
        rows.append(_Row(vggsound_split(vid, split), label, ("vggsound", vid, str(seconds)), stems, meta, line))
    return rows


def _audiocaps_rows(folder: Path, problems: _Problems) -> list[_Row]:
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
                seconds = _start_seconds(start)
            except ValueError:
                problems.report(meta, line, f"start_time {start!r} of {vid} is not a whole number of seconds")
                continue
            if not caption:
                problems.report(meta, line, f"has an empty caption (audiocap_id {cap_id}, YouTube id {vid})")
                continue
            stems = (f"{vid}_{seconds}", f"{vid}_{seconds:06d}", cap_id)
            rows.append(_Row(split, caption, ("audiocaps", vid, str(seconds)), stems, meta, line))
    return rows


# --------------------------------------------------------------------------- preparing
def _metadata(layout: str, root: Path) -> list[Path]:
    """The metadata files of ``layout`` under ``root`` (``LayoutError`` naming what was looked for if none)."""
    if layout == "music":
        found = [p for name in MUSIC_SOLO_FILES for p in _find_named(root, name)]
        found += _find_named(root, MUSIC_DUET_FILE)
        wanted = " or ".join(MUSIC_SOLO_FILES)
        ok = any(p.name in MUSIC_SOLO_FILES for p in found)
    elif layout == "vggsound":
        found, wanted = _find_named(root, VGGSOUND_FILE)[:1], VGGSOUND_FILE
        ok = bool(found)
    elif layout == "audiocaps":
        folders = _audiocaps_folders(root)[:1]
        found = [f / f"{s}.csv" for f in folders for s in MANIFEST_SPLITS if (f / f"{s}.csv").is_file()]
        wanted = f"train.csv and test.csv with header '{','.join(AUDIOCAPS_COLUMNS)}'"
        ok = bool(found)
    else:
        raise ValueError(f"unknown dataset layout {layout!r}; expected one of {list(DATASET_LAYOUTS)}")
    if not ok:
        raise LayoutError(
            f"no {DATASET_NAMES[layout]} metadata under {root}: looked for {wanted} in {root} "
            f"and its subfolders down to {SEARCH_DEPTH} levels"
        )
    return found


def _file_patterns(layout: str) -> str:
    return {
        "music": "<class>/<youtube id>.<ext>",
        "vggsound": "<youtube id>_<start, 6 digits>.<ext> or <youtube id>_<start>.<ext>",
        "audiocaps": "<youtube id>_<start_time>.<ext> or <audiocap_id>.<ext>",
    }[layout]


def _inputs_signature(
    layout: str, skip_bad: bool, root: Path, out: Path, metadata: list[Path], index: _AudioIndex
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


def _cached_report(out: Path, signature: str) -> LayoutReport | None:
    try:
        saved = json.loads((out / PREPARED_FILE).read_text())
    except (OSError, ValueError):
        return None
    if saved.get("signature") != signature or not all((out / f"{s}.csv").is_file() for s in MANIFEST_SPLITS):
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
    the module docstring for each layout and for what is kept, missing and
    bad. Raises ``LayoutError`` for bad metadata or audio (unless
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
    metadata = _metadata(layout, root)
    if out == root or any(p.parent == out for p in metadata):
        raise LayoutError(
            f"manifest folder {out} is the dataset root or holds its metadata; "
            f"expected a folder of its own (e.g. {root / 'manifests'})"
        )
    index = _index_audio(root)
    signature = _inputs_signature(layout, skip_bad, root, out, metadata, index)
    cached = _cached_report(out, signature)
    if cached is not None:
        return cached

    problems = _Problems(skip_bad)
    notes: list[str] = []
    if layout == "music":
        rows = [r for p in metadata if p.name in MUSIC_SOLO_FILES for r in _music_rows(p, problems)]
        notes += _music_duets(root)
    elif layout == "vggsound":
        rows = _vggsound_rows(metadata[0], problems)
    else:
        rows = _audiocaps_rows(metadata[0].parent, problems)

    clips: dict[tuple[str, ...], list[_Row]] = {}
    for r in rows:
        clips.setdefault(r.key, []).append(r)
    kept: dict[str, list[tuple[Path, str]]] = {s: [] for s in MANIFEST_SPLITS}
    missing: Counter = Counter()
    for group in clips.values():
        first = group[0]
        stems = tuple(dict.fromkeys(s for r in group for s in r.stems))
        path = _find_audio(index, stems, first.folder)
        if path is None:
            missing[first.split] += 1
            continue
        problem = _audio_problem(path)
        if problem is not None:
            problems.report(first.meta, first.line, f"audio file {path} of this row {problem}")
            continue
        kept[first.split].append((path, first.text))
    repeats = len(rows) - len(clips)
    if repeats:
        what = "further captions of listed clips" if layout == "audiocaps" else "repeated rows of listed clips"
        notes.append(f"{repeats} {what} not used")
    if index.unreadable:
        exts = "/".join(sorted(index.unreadable))
        notes.append(f"{sum(index.unreadable.values())} {exts} files not used (soundfile cannot read them)")
    empty = [s for s in ("train", "test") if not kept[s]]
    if empty:
        raise LayoutError(
            f"{DATASET_NAMES[layout]} at {root}: no usable audio for split(s) {empty} "
            f"({', '.join(f'{s}: {missing[s]} listed without a file' for s in empty)}); looked for files named "
            f"{_file_patterns(layout)} with an extension of {'/'.join(e[1:] for e in AUDIO_EXTENSIONS)} "
            f"anywhere under {root}" + (f"; {notes[-1]}: convert them to wav or flac" if index.unreadable else "")
        )

    kind = "caption" if layout == "audiocaps" else "label"
    labels = {text for s in MANIFEST_SPLITS for _, text in kept[s]}
    report = LayoutReport(
        layout=layout,
        root=str(root),
        out=str(out),
        kept={s: len(kept[s]) for s in MANIFEST_SPLITS},
        missing={s: missing[s] for s in MANIFEST_SPLITS},
        classes=None if kind == "caption" else len(labels),
        skipped=problems.skipped,
        notes=notes,
    )
    for s in MANIFEST_SPLITS:
        atomic_write_text(out / f"{s}.csv", _manifest_text(kind, kept[s], out, root))
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
            f"{DATASET_NAMES[layout]} at {report.root}: skipped {len(report.skipped)} bad row(s): {listed}{more}",
            stacklevel=2,
        )
    return Path(report.out)
