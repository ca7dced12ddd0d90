"""The ``recorded`` corpus: real recordings from Debian packages, split by recording.

:func:`build_recorded` fetches each package of :data:`~weaksep.data.recorded_rules.SOURCES`
once (``apt-get download``, into ``<corpus>/debs``; a ``.deb`` already there is used as it
is), unpacks it (``dpkg-deb -x``; nothing is installed), gives each file its class and
recording group by :data:`~weaksep.data.recorded_rules.RULES`, and writes manifests that the
study reads like any dataset's (``DATA=<corpus>``):

* ``train.csv``, ``val.csv``, ``test.csv``, ``clap.csv``: ``path,label``, paths relative to
  the corpus folder;
* ``recordings.csv``: every file used, with its class, group, split, package and seconds;
* ``classes.csv``: clips, groups and seconds per class and split; ``dropped_classes.csv``;
* ``sources.csv``: each package's version, licence, files used and what was left out.

Splits are made by recording group, never by clip: a group (a drum kit, one chord's
strums, one speaker's words, one numbered clip) lands in one split, the same for every
class it holds. Within each class, groups are taken in the order of a hash of their key
for ``test``, ``val`` and ``clap`` (:data:`SPLIT_SHARES`, at least one each), the rest
train; a class that cannot have a group in every split is dropped, with a line saying so.
Files with identical bytes (a voice pack copying another's laugh) are kept once.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import soundfile as sf

from ..inference.audio_files import audio_extensions
from ..io import atomic_write_text
from .recorded_rules import RULES, SOURCES, SPLIT_SHARES, SPLITS, Rule, Source


class RecordedCorpusError(RuntimeError):
    """The recorded corpus cannot be built; the message says what to run or fix."""


@dataclass(frozen=True)
class Recording:
    """One file of the corpus. ``path`` is relative to the corpus folder; ``seconds`` its length."""

    path: str
    label: str
    group: str  # "<package>:<group>"
    package: str
    seconds: float
    split: str = ""


@dataclass
class RecordedReport:
    """What :func:`build_recorded` kept, dropped and skipped."""

    folder: Path
    recordings: list[Recording]
    dropped: list[tuple[str, int, str]] = field(default_factory=list)  # (class, groups, reason)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    duplicates: int = 0

    def summary(self) -> str:
        classes = sorted({r.label for r in self.recordings})
        per_split = {s: sum(r.split == s for r in self.recordings) for s in SPLITS}
        lines = [
            f"recorded corpus: {len(self.recordings)} files, {len(classes)} classes, "
            + ", ".join(f"{s} {n}" for s, n in per_split.items())
            + f"; {self.duplicates} duplicate files kept once, {len(self.unreadable)} unreadable skipped"
        ]
        lines += [f"dropped class {c!r}: {n} recording groups, {why}" for c, n, why in self.dropped]
        return "\n".join(lines)


# --- fetching and unpacking -----------------------------------------------------------


def _run(cmd: Sequence[str], what: str, cwd: Path | None = None) -> None:
    if shutil.which(cmd[0]) is None:
        raise RecordedCorpusError(
            f"{cmd[0]} not found: the recorded corpus needs Debian's {cmd[0]} to {what}. On a Debian or "
            f"Ubuntu machine run `{' '.join(cmd)}`{f' in {cwd}' if cwd else ''}, or put the package's .deb there."
        )
    done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RecordedCorpusError(
            f"`{' '.join(cmd)}` failed (status {done.returncode}) to {what}: {' / '.join(tail)}"
            + (" (run `apt-get update` once first)" if cmd[0] == "apt-get" else "")
        )


def fetch_package(package: str, debs: Path, download: bool = True) -> Path:
    """The ``.deb`` of ``package`` in ``debs``, downloaded with ``apt-get download`` when absent."""
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found and download:
        _run(["apt-get", "download", package], f"download {package}", cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        raise RecordedCorpusError(f"no {package}_*.deb in {debs} (run `apt-get download {package}` there)")
    return found[-1]


def unpack_package(deb: Path, dest: Path) -> Path:
    """``deb`` extracted into ``dest`` once (``dpkg-deb -x``); an interrupted extraction starts again."""
    done = dest / ".unpacked"
    if done.is_file() and done.read_text() == deb.name:
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(deb), str(tmp)], f"unpack {deb.name}")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    (dest / ".unpacked").write_text(deb.name)
    return dest


# --- naming and classifying ------------------------------------------------------------


def _kit_files(kits: Path) -> Iterator[tuple[str, Path]]:
    """``(<kit>/<instrument name>/<file>, path)`` of every sample a Hydrogen ``drumkit.xml`` lists."""
    for xml in sorted(kits.glob("*/drumkit.xml")):
        root = ET.parse(xml).getroot()
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        for inst in root.iter(f"{ns}instrument"):
            name = (inst.findtext(f"{ns}name") or "").strip().replace("/", " ")
            for fn in inst.iter(f"{ns}filename"):
                if fn.text and (xml.parent / fn.text).is_file():
                    yield f"{xml.parent.name}/{name}/{fn.text}", xml.parent / fn.text


def source_files(source: Source, unpacked: Path) -> Iterator[tuple[str, Path | str]]:
    """``(name within the source, file or zip member)`` of every candidate file of ``source``."""
    root = unpacked / source.root
    if source.archive:
        with zipfile.ZipFile(root / source.archive) as z:
            yield from ((m, m) for m in z.namelist() if not m.endswith("/"))
    elif source.package.startswith("hydrogen-drumkits"):
        yield from _kit_files(root)
    else:
        yield from ((p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*")) if p.is_file())


def classify(package: str, name: str, rules: Sequence[Rule] = RULES) -> tuple[str, str] | None:
    """``(class, recording group)`` of file ``name`` of ``package`` by the first matching rule, or None."""
    for rule in rules:
        if rule.package == package and re.search(rule.pattern, name, re.IGNORECASE):
            m = re.search(rule.group, name, re.IGNORECASE)
            if m is None:
                raise RecordedCorpusError(f"rule for {rule.label!r}: group {rule.group!r} does not match {name!r}")
            return rule.label, f"{package}:{m.group(1)}"
    return None


# --- splitting ---------------------------------------------------------------------------


def _order(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def assign_splits(recordings: Sequence[Recording]) -> tuple[dict[str, str], list[tuple[str, int, str]]]:
    """Split of every recording group, and the classes dropped for want of groups.

    Classes are taken in sorted order; a group already placed by an earlier class (a kit
    holding several drums) keeps its split and counts towards this class's shares.
    """
    groups_of: dict[str, set[str]] = defaultdict(set)
    for r in recordings:
        groups_of[r.label].add(r.group)
    split_of: dict[str, str] = {}
    dropped: list[tuple[str, int, str]] = []
    for label in sorted(groups_of):
        groups = sorted(groups_of[label], key=_order)
        if len(groups) < len(SPLITS):
            dropped.append((label, len(groups), f"fewer than one per split ({len(SPLITS)})"))
            continue
        free = [g for g in groups if g not in split_of]
        for split, share in SPLIT_SHARES.items():
            want = max(1, round(share * len(groups))) - sum(split_of.get(g) == split for g in groups)
            for g in free[: max(want, 0)]:
                split_of[g] = split
            free = free[max(want, 0) :]
        for g in free:
            split_of[g] = "train"
        missing = [s for s in SPLITS if not any(split_of.get(g) == s for g in groups)]
        if missing:
            dropped.append((label, len(groups), f"no recording group left for {', '.join(missing)}"))
    return split_of, dropped


# --- the corpus --------------------------------------------------------------------------


def _collect(source: Source, unpacked: Path, folder: Path, rules: Sequence[Rule]) -> Iterator[tuple[str, str, Path]]:
    """``(class, group, file under folder)`` of every file of ``source`` a rule takes (zip members extracted)."""
    extracted = folder / "extracted" / source.package
    zip_file = zipfile.ZipFile(unpacked / source.root / source.archive) if source.archive else None
    try:
        for name, where in source_files(source, unpacked):
            if Path(name).suffix.lower().lstrip(".") not in audio_extensions():
                continue  # kit files, game definitions, documentation
            hit = classify(source.package, name, rules)
            if hit is None:
                continue
            if zip_file is not None:
                path = extracted / name
                if not path.is_file():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(zip_file.read(str(where)))
            else:
                path = Path(where)
            yield hit[0], hit[1], path
    finally:
        if zip_file is not None:
            zip_file.close()


def build_recorded(
    folder: str | Path,
    *,
    sources: Sequence[Source] = SOURCES,
    rules: Sequence[Rule] = RULES,
    download: bool = True,
) -> RecordedReport:
    """Fetch, unpack, classify and split the recorded corpus into ``folder``; write its manifests.

    ``download=False`` uses only the ``.deb`` files already in ``<folder>/debs`` (the tests
    build theirs). Re-running reuses what was fetched and unpacked.
    """
    folder = Path(folder)
    found: list[Recording] = []
    unreadable: list[tuple[str, str]] = []
    seen: dict[tuple[str, str], str] = {}
    duplicates = 0
    versions: dict[str, str] = {}
    for source in sources:
        deb = fetch_package(source.package, folder / "debs", download)
        versions[source.package] = unquote(deb.stem.split("_")[1]) if "_" in deb.stem else ""
        unpacked = unpack_package(deb, folder / "packages" / source.package)
        for label, group, path in _collect(source, unpacked, folder, rules):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if (label, digest) in seen:
                duplicates += 1
                continue
            rel = path.relative_to(folder).as_posix()
            seen[(label, digest)] = rel
            try:
                info = sf.info(str(path))
                seconds = info.frames / info.samplerate
            except Exception as e:  # soundfile raises several kinds; the file is skipped and named
                unreadable.append((rel, f"{type(e).__name__}: {str(e).replace(str(path), rel)}"))
                continue
            found.append(Recording(rel, label, group, source.package, round(seconds, 3)))
    split_of, dropped = assign_splits(found)
    gone = {c for c, _, _ in dropped}
    kept = [
        Recording(r.path, r.label, r.group, r.package, r.seconds, split_of[r.group])
        for r in found
        if r.label not in gone
    ]
    kept.sort(key=lambda r: (r.split, r.label, r.path))
    _write_outputs(folder, kept, dropped, unreadable, sources, versions)
    return RecordedReport(folder, kept, dropped, unreadable, duplicates)


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _write_outputs(
    folder: Path,
    kept: list[Recording],
    dropped: list[tuple[str, int, str]],
    unreadable: list[tuple[str, str]],
    sources: Sequence[Source],
    versions: dict[str, str],
) -> None:
    for split in SPLITS:
        rows = [(r.path, r.label) for r in kept if r.split == split]
        atomic_write_text(folder / f"{split}.csv", _csv_text(("path", "label"), rows))
    atomic_write_text(
        folder / "recordings.csv",
        _csv_text(
            ("path", "label", "group", "split", "package", "seconds"),
            [(r.path, r.label, r.group, r.split, r.package, r.seconds) for r in kept],
        ),
    )
    class_rows = []
    for label in sorted({r.label for r in kept}):
        row: list[object] = [label]
        for split in SPLITS:
            mine = [r for r in kept if r.label == label and r.split == split]
            row += [len(mine), len({r.group for r in mine}), round(sum(r.seconds for r in mine), 1)]
        class_rows.append(row)
    header = ["label"] + [f"{s}_{what}" for s in SPLITS for what in ("clips", "groups", "seconds")]
    atomic_write_text(folder / "classes.csv", _csv_text(header, class_rows))
    atomic_write_text(folder / "dropped_classes.csv", _csv_text(("label", "groups", "reason"), dropped))
    atomic_write_text(folder / "unreadable.csv", _csv_text(("path", "reason"), unreadable))
    atomic_write_text(
        folder / "sources.csv",
        _csv_text(
            ("package", "version", "licence", "files_used", "seconds_used", "left_out"),
            [
                (
                    s.package,
                    versions.get(s.package, ""),
                    s.licence,
                    sum(r.package == s.package for r in kept),
                    round(sum(r.seconds for r in kept if r.package == s.package), 1),
                    s.left_out,
                )
                for s in sources
            ],
        ),
    )


COMMITTED_FILES = ("train.csv", "val.csv", "test.csv", "clap.csv", "recordings.csv", "classes.csv",
                   "dropped_classes.csv", "sources.csv")  # fmt: skip


def recorded_corpus(cache: str | Path | None = None, *, fixture: bool = False) -> Path:
    """The folder of the recorded corpus (its manifests: ``DATA`` for a study), built on first use.

    The real packages are fetched with ``apt-get download`` into ``<cache>/recorded``;
    ``fixture`` builds the tiny stand-in packages of :mod:`weaksep.data.recorded_fixture`
    into ``<cache>/recorded-fixture`` instead (the smoke profile: no download).
    """
    from ..paths import default_cache

    folder = Path(cache or default_cache()) / ("recorded-fixture" if fixture else "recorded")
    if (folder / "recordings.csv").is_file():
        return folder
    if fixture:
        from .recorded_fixture import fixture_sources, write_recorded_debs

        write_recorded_debs(folder / "debs", folder / "fixture-trees")
        report = build_recorded(folder, sources=fixture_sources(), download=False)
    else:
        report = build_recorded(folder)
    print(report.summary())
    return folder


def commit_listing(folder: str | Path, dest: str | Path) -> Path:
    """Copy the corpus's manifests, class list and sources (not the audio) into ``dest`` (under ``results/``)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in COMMITTED_FILES:
        shutil.copyfile(Path(folder) / name, dest / name)
    return dest
