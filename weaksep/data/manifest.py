"""Real datasets from a manifest: a CSV of ``path,label`` or ``path,caption``.

Users with MUSIC or VGGSound (single-source clips with a class label) or
AudioCaps (captioned natural mixtures) list their files in a CSV with a header
row. Relative paths resolve against the CSV's folder. Any format soundfile reads
(WAV, FLAC, OGG, ...) is accepted; audio is mixed down to mono, resampled with
torchaudio to the study's rate and cropped (from the start) or zero-padded to
the clip length.

Bad input never disappears silently: each problem raises ``ManifestError``
naming the CSV line, the file and what was wrong, or, with ``skip_bad=True``,
the row is skipped and listed in ``skipped`` with a warning.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from .captions import parse_caption
from .corpus import ClipSet

SILENCE_PEAK = 1e-5  # a clip whose samples never exceed this is silent (-100 dBFS)


class ManifestError(ValueError):
    """A row of a manifest that cannot be used; the message names line, file and problem."""


@dataclass
class ManifestClips(ClipSet):
    """A ClipSet read from a manifest.

    For ``kind="label"`` ``labels`` are class names. For ``kind="caption"``
    ``labels`` are the captions (``classes`` their sorted distinct values) and
    ``entities[k]`` the phrases ``parse_caption`` finds in caption ``k``.
    ``paths`` are the resolved files, ``rows`` their CSV line numbers, and
    ``skipped`` the ``(line, reason)`` of rows left out with ``skip_bad=True``.
    """

    kind: str = "label"
    paths: list[Path] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    entities: list[list[str]] | None = None

    @property
    def captions(self) -> list[str] | None:
        return self.labels if self.kind == "caption" else None


def read_audio(path: str | Path) -> tuple[torch.Tensor, int]:
    """A sound file as (channels, samples) float32 and its rate in Hz.

    Raises ``FileNotFoundError`` (missing) or ``ManifestError`` (unreadable,
    zero-length, non-finite samples), each naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError ...
        raise ManifestError(f"audio file {path} is not readable by soundfile ({type(e).__name__}: {e})") from e
    if data.shape[0] == 0:
        raise ManifestError(f"audio file {path} has zero length (no samples)")
    if not np.isfinite(data).all():
        raise ManifestError(f"audio file {path} contains NaN or infinite samples")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)


def load_audio(path: str | Path, sample_rate: int, clip_samples: int) -> torch.Tensor:
    """One file as a ``(clip_samples,)`` float32 mono clip at ``sample_rate``.

    Raises ``FileNotFoundError`` (missing), ``ManifestError`` (unreadable,
    zero-length or silent), each naming the file.
    """
    audio, rate = read_audio(path)
    mono = audio.mean(dim=0)
    if float(mono.abs().max()) <= SILENCE_PEAK:
        raise ManifestError(f"audio file {path} is silent (peak {float(mono.abs().max()):.1e} <= {SILENCE_PEAK:.0e})")
    if rate != sample_rate:
        mono = AF.resample(mono, int(rate), int(sample_rate))
    if mono.numel() >= clip_samples:
        return mono[:clip_samples].clone()
    return torch.nn.functional.pad(mono, (0, clip_samples - mono.numel()))


def load_manifest(
    csv_path: str | Path,
    sample_rate: int,
    clip_samples: int,
    *,
    kind: str = "label",
    classes: Sequence[str] | None = None,
    skip_bad: bool = False,
) -> ManifestClips:
    """Read a manifest CSV (header ``path,label`` or ``path,caption``) into memory.

    ``kind`` is "label" or "caption" and must match the header's second
    column. With ``classes`` given, a label outside them is an error and
    ``label_ids`` index ``classes``. Each bad row (missing, unreadable,
    zero-length or silent file, empty label or caption, unknown label, wrong
    number of columns) raises ``ManifestError``, or with ``skip_bad`` is
    skipped, listed in ``.skipped`` and warned about. Audio is ``(K,
    clip_samples)`` float32 mono at ``sample_rate``.
    """
    csv_path = Path(csv_path)
    if kind not in ("label", "caption"):
        raise ValueError(f"kind must be 'label' or 'caption', got {kind!r}")
    if not csv_path.is_file():
        raise FileNotFoundError(f"manifest {csv_path} does not exist")
    with open(csv_path, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    lines = [(i + 1, row) for i, row in enumerate(table) if row and any(c.strip() for c in row)]
    if not lines:
        raise ManifestError(f"manifest {csv_path} is empty; expected a header 'path,{kind}' and rows")
    head_line, header = lines[0]
    header = [h.strip().lower() for h in header]
    if header != ["path", kind]:
        raise ManifestError(f"manifest {csv_path} line {head_line}: header is {header}, expected ['path', '{kind}']")
    known = set(classes) if classes is not None else None

    audio, labels, paths, rows, skipped = [], [], [], [], []
    for line, row in lines[1:]:
        try:
            if len(row) != 2:
                raise ManifestError(
                    f"has {len(row)} column(s) {row}, expected 2 (path,{kind}); quote fields that contain commas"
                )
            rel, text = row[0].strip(), row[1].strip()
            if not rel:
                raise ManifestError("has an empty path")
            if not text:
                raise ManifestError(f"has an empty {kind} (file {rel})")
            if known is not None and kind == "label" and text not in known:
                raise ManifestError(f"label {text!r} of {rel} is not one of the classes {sorted(known)}")
            path = Path(rel) if Path(rel).is_absolute() else csv_path.parent / rel
            try:
                clip = load_audio(path, sample_rate, clip_samples)
            except FileNotFoundError as e:
                raise ManifestError(f"{e} (path {rel!r} resolved against {csv_path.parent})") from e
        except ManifestError as e:
            reason = f"manifest {csv_path} line {line}: {e}"
            if not skip_bad:
                raise ManifestError(reason) from e
            skipped.append((line, str(e)))
            continue
        audio.append(clip)
        labels.append(text)
        paths.append(path)
        rows.append(line)

    if skipped:
        listed = "; ".join(f"line {n}: {r}" for n, r in skipped[:5])
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        warnings.warn(f"manifest {csv_path}: skipped {len(skipped)} bad row(s): {listed}{more}", stacklevel=2)
    if not audio:
        raise ManifestError(f"manifest {csv_path} has no usable row ({len(skipped)} skipped)")
    stacked = torch.stack(audio)
    cls_list = sorted(set(labels)) if classes is None or kind == "caption" else list(classes)
    index = {c: i for i, c in enumerate(cls_list)}
    ids = torch.tensor([index[t] for t in labels], dtype=torch.long)
    entities = [parse_caption(t) for t in labels] if kind == "caption" else None
    return ManifestClips(
        stacked,
        labels,
        cls_list,
        ids,
        int(sample_rate),
        kind=kind,
        paths=paths,
        rows=rows,
        skipped=skipped,
        entities=entities,
    )
