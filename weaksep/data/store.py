"""A dataset decoded once: every file of a manifest as a mono int16 array at the study's rate.

Real datasets are large (VGGSound: about 180 000 clips of 10 s; MUSIC: hundreds of
videos of minutes each) and their files are of any length. :func:`prepare_store`
decodes, mixes down and resamples each file of a manifest once, in parallel, into
``<store>/audio/<k>.npy`` (16-bit, memory-mappable: a crop reads only its own samples)
and writes ``<store>/index.csv`` (file, source, label, entities, samples, seconds,
peak of the centre crop). It is resumable (a file already decoded is not decoded
again) and never stops on a bad file: an unreadable, empty or silent file is left
out, counted in the summary line and listed in ``<store>/skipped.csv``.

:class:`StoredClips` reads a store: ``train_crops`` draws a new random crop across
the whole file on every call (a silent crop is drawn again), as the authors' loaders
do; ``centre_crops`` gives the fixed centre crop of validation and test. A file whose
centre crop is silent is left out of validation and test (it would score nothing).
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .captions import parse_caption
from .manifest import SILENCE_PEAK, ManifestError, read_audio

INDEX_COLUMNS = ("file", "source", "label", "entities", "samples", "seconds", "centre_peak")
STORE_VERSION = 1  # bump when what a store holds changes: stores of another version are rebuilt
MAX_REDRAWS = 32  # draws of a training crop before the loudest of them is taken (cheap: memory-mapped reads)


def store_dir(cache: str | Path, manifest: str | Path, sample_rate: int) -> Path:
    """Where the store of ``manifest`` at ``sample_rate`` lives in ``cache`` (``<cache>/stores/<split>-<hash>``):
    the same manifest at the same rate is decoded once, whoever asks first."""
    manifest = Path(manifest)
    key = hashlib.sha256(manifest.read_bytes() + repr((int(sample_rate), STORE_VERSION)).encode()).hexdigest()[:12]
    return Path(cache) / "stores" / f"{manifest.stem}-{key}"


def _centre(n: int, clip: int) -> int:
    return max(0, (n - clip) // 2)


def _decode_one(job: tuple[str, str, int, int]) -> tuple[int, float] | str:
    """Decode ``source`` into ``dest`` (mono int16 at ``rate``); its (samples, centre peak) or an error."""
    source, dest, rate, clip = job
    dest_path = Path(dest)
    try:
        if dest_path.is_file():  # resumed: decoded by an earlier run
            audio = np.load(dest_path, mmap_mode="r")
        else:
            import torchaudio.functional as AF

            data, sr = read_audio(source)
            mono = data.mean(dim=0)
            if float(mono.abs().max()) <= SILENCE_PEAK:
                return f"silent (peak {float(mono.abs().max()):.1e})"
            if sr != rate:
                mono = AF.resample(mono, int(sr), int(rate))
            audio = np.round(mono.clamp(-1, 1).numpy() * 32767).astype(np.int16)
            tmp = dest_path.with_suffix(".tmp.npy")
            np.save(tmp, audio)
            os.replace(tmp, dest_path)
        start = _centre(len(audio), clip)
        centre = np.asarray(audio[start : start + clip], dtype=np.float32) / 32767
        return len(audio), float(np.abs(centre).max()) if centre.size else 0.0
    except (ManifestError, FileNotFoundError, OSError, ValueError, RuntimeError) as e:
        return str(e).replace(str(source), "").strip(" :") or type(e).__name__


def _read_manifest(csv_path: Path) -> tuple[str, list[tuple[int, Path, str]]]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows or [h.strip().lower() for h in rows[0]] not in (["path", "label"], ["path", "caption"]):
        raise ManifestError(f"manifest {csv_path}: expected a header 'path,label' or 'path,caption', got {rows[:1]}")
    kind = rows[0][1].strip().lower()
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) == 2 and row[0].strip() and row[1].strip():
            rel = row[0].strip()
            out.append((line, Path(rel) if Path(rel).is_absolute() else csv_path.parent / rel, row[1].strip()))
    return kind, out


@dataclass
class StoreReport:
    """What :func:`prepare_store` did: files kept, decoded now, skipped (with reasons), seconds of audio."""

    store: Path
    kept: int = 0
    decoded: int = 0
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (manifest line, file, reason)
    seconds: float = 0.0

    def summary(self, name: str | None = None) -> str:
        """One line; ``name`` stands for the store's folder (results hold no machine path)."""
        reused = self.kept - self.decoded
        line = (
            f"{name or self.store}: {self.kept} files, {self.seconds / 3600:.2f} h of audio ({self.decoded} decoded now"
        )
        line += f", {reused} already there)" if reused else ")"
        if self.skipped:
            line += f"; skipped {len(self.skipped)} bad file(s), listed in {name or self.store}/skipped.csv"
        return line


def prepare_store(
    manifest: str | Path, store: str | Path, sample_rate: int, clip_samples: int, workers: int | None = None
) -> StoreReport:
    """Decode every file of ``manifest`` once into ``store`` (see the module docstring).

    ``workers`` processes decode in parallel (default: the CPU count). Returns the report;
    a manifest without a usable file raises ``ManifestError``.
    """
    manifest, store = Path(manifest), Path(store)
    kind, rows = _read_manifest(manifest)
    (store / "audio").mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(path), str(store / "audio" / f"{k}.npy"), sample_rate, clip_samples) for k, (_, path, _) in enumerate(rows)
    ]
    existed = {j[1] for j in jobs if Path(j[1]).is_file()}
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 1:
        # spawn, not fork: a process that has run torch's OpenMP kernels cannot fork children that
        # run them again (they hang: seen here when a study prepared a store after it had trained)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_decode_one, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    else:
        results = [_decode_one(j) for j in jobs]
    report = StoreReport(store)
    index = []
    for k, ((line, path, text), result, job) in enumerate(zip(rows, results, jobs)):
        if isinstance(result, str):
            report.skipped.append((line, str(path), result))
            continue
        samples, centre_peak = result
        entities = parse_caption(text) if kind == "caption" else [text]
        index.append(
            {
                "file": f"audio/{k}.npy",
                "source": str(path),
                "label": text,
                "entities": "|".join(entities),
                "samples": samples,
                "seconds": round(samples / sample_rate, 3),
                "centre_peak": f"{centre_peak:.3g}",
            }
        )
        report.kept += 1
        report.decoded += job[1] not in existed
        report.seconds += samples / sample_rate
    if not index:
        raise ManifestError(f"manifest {manifest} has no usable file ({len(report.skipped)} skipped)")
    _write_csv(store / "index.csv", index, INDEX_COLUMNS, extra={"kind": kind, "rate": sample_rate})
    _write_csv(
        store / "skipped.csv",
        [{"line": n, "file": f, "reason": r} for n, f, r in report.skipped],
        ("line", "file", "reason"),
    )
    return report


def _write_csv(path: Path, rows: list[dict], columns: tuple[str, ...], extra: dict | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        if extra:  # a comment line the reader checks: what the files are
            f.write("# " + " ".join(f"{k}={v}" for k, v in extra.items()) + f" version={STORE_VERSION}\n")
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


class StoredClips:
    """The clips of a store (:func:`prepare_store`), read in crops of ``clip_samples``.

    The interface of :class:`~weaksep.data.ClipSet` (``labels``, ``classes``,
    ``label_ids``, ``sample_rate``, ``train_crops``, ``centre_crops``), without
    holding the audio in memory. ``split`` other than ``train`` leaves out the
    files whose centre crop is silent. ``entities[k]`` are the parsed phrases of a caption
    (its class name for a labelled dataset).
    """

    def __init__(self, store: str | Path, clip_samples: int, split: str = "train") -> None:
        self.store = Path(store)
        path = self.store / "index.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: prepare the store first (prepare_store)")
        with open(path, newline="", encoding="utf-8") as f:
            head = f.readline()
            meta = dict(kv.split("=", 1) for kv in head.lstrip("# ").split())
            rows = list(csv.DictReader(f))
        if int(meta.get("version", 0)) != STORE_VERSION:
            raise ValueError(f"{path} is a store of version {meta.get('version')}, this code reads {STORE_VERSION}")
        self.kind, self.sample_rate, self.clip_samples = meta["kind"], int(meta["rate"]), int(clip_samples)
        if split != "train":
            silent = [r for r in rows if float(r["centre_peak"]) <= SILENCE_PEAK]
            if silent:
                warnings.warn(
                    f"{path}: {len(silent)} file(s) with a silent centre crop left out of {split}", stacklevel=2
                )
            rows = [r for r in rows if float(r["centre_peak"]) > SILENCE_PEAK]
        self.files = [self.store / r["file"] for r in rows]
        self.lengths = torch.tensor([int(r["samples"]) for r in rows])
        self.labels = [r["label"] for r in rows]
        self.entities = [r["entities"].split("|") for r in rows]
        self.sources = [r["source"] for r in rows]
        self.classes = sorted(set(self.labels))
        index = {c: i for i, c in enumerate(self.classes)}
        self.label_ids = torch.tensor([index[lab] for lab in self.labels], dtype=torch.long)
        self._audio: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def _read(self, k: int, start: int) -> torch.Tensor:
        data = np.load(self.files[k], mmap_mode="r")  # reads the header; the slice reads its samples only
        out = np.zeros(self.clip_samples, dtype=np.float32)
        piece = np.asarray(data[start : start + self.clip_samples], dtype=np.float32) / 32767
        out[: len(piece)] = piece
        return torch.from_numpy(out)

    def centre_crop(self, k: int) -> torch.Tensor:
        """(clip_samples,) the middle of file ``k``, zero-padded when the file is shorter."""
        return self._read(k, _centre(int(self.lengths[k]), self.clip_samples))

    def random_crop(self, k: int, generator: torch.Generator) -> torch.Tensor:
        """(clip_samples,) a crop of file ``k`` at a start uniform over the whole file; a silent
        crop is drawn again (up to MAX_REDRAWS draws, then the loudest is kept)."""
        span = max(0, int(self.lengths[k]) - self.clip_samples)
        best, best_peak = None, -1.0
        for _ in range(MAX_REDRAWS):
            start = int(torch.randint(span + 1, (1,), generator=generator))
            crop = self._read(k, start)
            peak = float(crop.abs().max())
            if peak > SILENCE_PEAK:
                return crop
            if peak > best_peak:
                best, best_peak = crop, peak
        return best

    def train_crops(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(*idx.shape, clip_samples): a new random crop of each file of ``idx``."""
        flat = [self.random_crop(int(k), generator) for k in idx.reshape(-1)]
        return torch.stack(flat).reshape(*idx.shape, self.clip_samples)

    def centre_crops(self, idx: torch.Tensor) -> torch.Tensor:
        """(*idx.shape, clip_samples): the fixed centre crop of each file of ``idx``."""
        flat = [self.centre_crop(int(k)) for k in idx.reshape(-1)]
        return torch.stack(flat).reshape(*idx.shape, self.clip_samples)

    @property
    def audio(self) -> torch.Tensor:
        """(K, clip_samples) every file's centre crop, in memory (for small splits: CLAP scoring)."""
        if self._audio is None:
            self._audio = self.centre_crops(torch.arange(len(self)))
        return self._audio
