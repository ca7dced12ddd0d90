"""Rendered corpora on disk: render every split once, cache, load as tensors.

Layout (``root/<profile.name>/<corpus>/``)::

    settings.json                     what the clips were rendered with (+ hash)
    manifest.csv                      one row per clip; written last, so its
                                      presence means the corpus is complete
    <split>/<label_slug>/<index>.wav  PCM_16 mono clips at profile.sample_rate
    testsets/<split>_n<N>.pt          fixed mixtures (see mixtures.py)

Splits ``train``/``val``/``test`` use ``profile.separation_soundfont``; the
``clap`` split (for pretraining the CLAP stand-in) alternates over the installed
``profile.clap_soundfonts``. Every clip's generator is seeded from its identity
``(seed, corpus, split, label, index)``, so the clap split never repeats a clip
of the other splits even where it shares their soundfont.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..io import atomic_write_bytes, atomic_write_text
from ..profiles import Profile
from .classes import CLASS_TABLES, CORPORA, corpus_classes, slug
from .render import RENDER_VERSION, TARGET_RMS, ClipRenderer, clip_seed, make_score
from .soundfonts import available_soundfonts, find_soundfont

SPLITS: tuple[str, ...] = ("train", "val", "test", "clap")
SEPARATION_SPLITS: tuple[str, ...] = ("train", "val", "test")
MANIFEST_COLUMNS: tuple[str, ...] = ("path", "label", "split", "index", "soundfont", "program", "seed", "settings_hash")
WAV_SUBTYPE = "PCM_16"


@dataclass
class ClipSet:
    """Single-source clips of one corpus split, in memory.

    ``audio`` is ``(K, T)`` float32 mono at ``sample_rate`` (``T =
    profile.clip_samples``); ``labels[k]`` is the class name of clip ``k``;
    ``classes`` are the sorted class names of the corpus and ``label_ids``
    ``(K,)`` long indexes into them.
    """

    audio: torch.Tensor
    labels: list[str]
    classes: list[str]
    label_ids: torch.Tensor
    sample_rate: int

    def __len__(self) -> int:
        return len(self.labels)

    def train_crops(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(*idx.shape, T) the clips ``idx`` of a training batch: held clips are one crop long, so the
        crop is the clip and ``generator`` is not drawn from (a store draws random crops with it)."""
        return self.audio[idx]

    def centre_crops(self, idx: torch.Tensor) -> torch.Tensor:
        """(*idx.shape, T) the clips ``idx`` of fixed validation and test mixtures."""
        return self.audio[idx]

    def __post_init__(self) -> None:
        if self.audio.ndim != 2 or self.audio.shape[0] != len(self.labels):
            raise ValueError(f"audio must be (K, T) with K = {len(self.labels)} labels, got {tuple(self.audio.shape)}")

    @classmethod
    def from_labels(
        cls, audio: torch.Tensor, labels: list[str], sample_rate: int, classes: list[str] | None = None
    ) -> ClipSet:
        """A ClipSet whose ``label_ids`` index ``classes`` (default: sorted distinct labels)."""
        classes = sorted(set(labels)) if classes is None else list(classes)
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the classes {classes}")
        ids = torch.tensor([index[lab] for lab in labels], dtype=torch.long)
        return cls(audio, list(labels), classes, ids, sample_rate)


@dataclass(frozen=True)
class ClipPlan:
    """One clip to render: where it goes and everything that decides its samples."""

    path: str  # relative to the corpus folder
    label: str
    split: str
    index: int
    soundfont: str
    program: int  # GM program, -1 for percussion
    seed: int


def corpus_dir(root: str | Path, profile: Profile, corpus: str) -> Path:
    """``root/<profile.name>/<corpus>``."""
    _check_corpus(corpus)
    return Path(root) / profile.name / corpus


def _check_corpus(corpus: str) -> None:
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; expected one of {list(CORPORA)}")


def _base_seed(profile: Profile) -> int:
    return int(profile.extra.get("seed", 0))


def clap_soundfonts_in_use(profile: Profile) -> list[str]:
    """The installed soundfonts of ``profile.clap_soundfonts`` (missing ones warn)."""
    found = available_soundfonts(profile.clap_soundfonts)
    if not found:
        raise FileNotFoundError(f"none of the CLAP-pretraining soundfonts {list(profile.clap_soundfonts)} is installed")
    return found


def corpus_settings(profile: Profile, corpus: str, clap_fonts: list[str] | None = None) -> dict:
    """Everything that decides the rendered files of ``corpus`` (hashed for the cache)."""
    _check_corpus(corpus)
    clap_fonts = clap_soundfonts_in_use(profile) if clap_fonts is None else clap_fonts
    fonts = {}
    for name in sorted(set(clap_fonts) | {profile.separation_soundfont}):
        path = find_soundfont(name, required=True)
        fonts[name] = {"file": path.name, "bytes": path.stat().st_size}
    table = CLASS_TABLES[corpus]
    return {
        "render_version": RENDER_VERSION,
        "corpus": corpus,
        "seed": _base_seed(profile),
        "sample_rate": profile.sample_rate,
        "clip_samples": profile.clip_samples,
        "clips_per_class": {s: int(profile.clips_per_class[s]) for s in SPLITS},
        "separation_soundfont": profile.separation_soundfont,
        "clap_soundfonts": list(clap_fonts),
        "soundfonts": fonts,
        "classes": {name: repr(spec) for name, spec in sorted(table.items())},
        "target_rms": TARGET_RMS,
        "wav_subtype": WAV_SUBTYPE,
    }


def settings_hash(settings: dict) -> str:
    """Short stable hash of ``corpus_settings``."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def plan_corpus(profile: Profile, corpus: str, clap_fonts: list[str] | None = None) -> list[ClipPlan]:
    """Every clip of ``corpus`` for ``profile``, in a fixed order."""
    _check_corpus(corpus)
    missing = [s for s in SPLITS if s not in profile.clips_per_class]
    if missing:
        raise ValueError(f"profile {profile.name!r}: clips_per_class lacks split(s) {missing}")
    clap_fonts = clap_soundfonts_in_use(profile) if clap_fonts is None else clap_fonts
    seed0 = _base_seed(profile)
    table = CLASS_TABLES[corpus]
    plans = []
    for split in SPLITS:
        for label in corpus_classes(corpus):
            program = table[label].program
            for i in range(int(profile.clips_per_class[split])):
                font = profile.separation_soundfont if split != "clap" else clap_fonts[i % len(clap_fonts)]
                plans.append(
                    ClipPlan(
                        path=f"{split}/{slug(label)}/{i:05d}.wav",
                        label=label,
                        split=split,
                        index=i,
                        soundfont=font,
                        program=-1 if program is None else program,
                        seed=clip_seed(seed0, corpus, split, label, i),
                    )
                )
    return plans


def _wav_bytes(audio: torch.Tensor, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio.numpy(), sample_rate, subtype=WAV_SUBTYPE, format="WAV")
    return buf.getvalue()


def _manifest_text(plans: list[ClipPlan], digest: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MANIFEST_COLUMNS)
    for p in plans:
        w.writerow([p.path, p.label, p.split, p.index, p.soundfont, p.program, p.seed, digest])
    return buf.getvalue()


def read_corpus_manifest(folder: str | Path) -> list[dict[str, str]]:
    """Rows of ``folder/manifest.csv`` as dicts (column -> text)."""
    path = Path(folder) / "manifest.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and set(MANIFEST_COLUMNS) - set(rows[0]):
        raise ValueError(f"{path}: columns {sorted(rows[0])} lack {sorted(set(MANIFEST_COLUMNS) - set(rows[0]))}")
    return rows


def corpus_is_current(folder: Path, digest: str, check_files: bool = True) -> bool:
    """True when ``folder`` holds a complete corpus rendered with settings ``digest``."""
    if not (folder / "manifest.csv").is_file():
        return False
    try:
        rows = read_corpus_manifest(folder)
    except (ValueError, csv.Error, OSError):
        return False
    if not rows or any(r["settings_hash"] != digest for r in rows):
        return False
    return not check_files or all((folder / r["path"]).is_file() for r in rows)


def _saved_hash(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("hash")
    except (OSError, ValueError, AttributeError):
        return None


def render_corpus(profile: Profile, root: str | Path, corpus: str = "instruments") -> Path:
    """Render every split of ``corpus`` under ``root/<profile.name>/<corpus>`` and return that folder.

    Cached: when the manifest is present, its settings hash matches and every
    file exists, nothing is done. A corpus rendered with other settings is
    removed first (testsets built on it included). Files are written
    atomically and deterministically: the same profile gives the same bytes.
    """
    folder = corpus_dir(root, profile, corpus)
    clap_fonts = clap_soundfonts_in_use(profile)
    settings = corpus_settings(profile, corpus, clap_fonts)
    digest = settings_hash(settings)
    if corpus_is_current(folder, digest):
        return folder
    old = folder / "settings.json"
    stale = folder.exists() and _saved_hash(old) != digest
    if stale:  # rendered with other settings (or half-written by an older version)
        for sub in (*SPLITS, "testsets"):
            shutil.rmtree(folder / sub, ignore_errors=True)
        (folder / "manifest.csv").unlink(missing_ok=True)
    atomic_write_text(old, json.dumps({"hash": digest, "settings": settings}, indent=1, sort_keys=True) + "\n")

    plans = plan_corpus(profile, corpus, clap_fonts)
    seconds = profile.clip_samples / profile.sample_rate
    renderers: dict[str, ClipRenderer] = {}
    for p in plans:
        target = folder / p.path
        if target.is_file():  # same settings hash: written by an interrupted earlier run
            continue
        if p.soundfont not in renderers:
            renderers[p.soundfont] = ClipRenderer(find_soundfont(p.soundfont, required=True), profile.sample_rate)
        score = make_score(corpus, p.label, seconds, p.seed)
        audio = renderers[p.soundfont].render(score, profile.clip_samples)
        atomic_write_bytes(target, _wav_bytes(audio, profile.sample_rate))
    atomic_write_text(folder / "manifest.csv", _manifest_text(plans, digest))
    return folder


def load_clips(root: str | Path, profile: Profile, corpus: str, split: str) -> ClipSet:
    """Clips of ``split`` as a ClipSet (renders the corpus first when missing or stale)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    folder = render_corpus(profile, root, corpus)
    rows = [r for r in read_corpus_manifest(folder) if r["split"] == split]
    audio = torch.zeros(len(rows), profile.clip_samples)
    for k, r in enumerate(rows):
        data, rate = sf.read(folder / r["path"], dtype="float32", always_2d=False)
        if rate != profile.sample_rate or data.shape != (profile.clip_samples,):
            raise ValueError(
                f"{folder / r['path']}: expected mono {profile.clip_samples} samples at "
                f"{profile.sample_rate} Hz, got shape {data.shape} at {rate} Hz"
            )
        audio[k] = torch.from_numpy(np.ascontiguousarray(data))
    return ClipSet.from_labels(audio, [r["label"] for r in rows], profile.sample_rate, corpus_classes(corpus))


def clip_rows(root: str | Path, profile: Profile, corpus: str, split: str | None = None) -> list[dict[str, str]]:
    """Manifest rows of a rendered corpus (of one split if given), e.g. to see each clip's soundfont."""
    rows = read_corpus_manifest(corpus_dir(root, profile, corpus))
    return [r for r in rows if split is None or r["split"] == split]
