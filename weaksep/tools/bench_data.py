"""``make bench-data``: the data path at a real dataset's size, measured.

Writes a paper-like dataset in the MUSIC layout (long stereo 44.1 kHz recordings,
each opening with a few silent seconds as many videos do) and one in the VGGSound
layout (10-second clips), each at 1x and at ``scale`` x its clip count (the extra
copies are hard links: the same bytes under other names, decoded again like any
file). For each it times the preparation (layout -> manifests -> store), then reads
``batches`` training batches of the paper profile through the step loader with 0
and with 2 workers, sampling the resident memory of the whole process tree, and
measures how much of one long recording 200 training crops cover. Figures go to
``results/bench_data.json``.
"""

from __future__ import annotations

import gc
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soundfile as sf
import torch

from ..data.classes import INSTRUMENTS, slug
from ..data.layouts import prepare_data
from ..data.store import StoredClips, prepare_store
from ..method.objective import BatchSource, step_loader
from ..profiles import get_profile
from ..runs import RunConfig

FILE_RATE = 44_100


def _recording(seconds: float, seed: int, silent_intro: float = 0.0) -> np.ndarray:
    """(samples, 2) int16: a few harmonics with vibrato and noise, ``silent_intro`` seconds of silence first."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FILE_RATE)) / FILE_RATE
    f0 = rng.uniform(110, 880)
    phase = 2 * np.pi * f0 * (t + 0.002 * np.sin(2 * np.pi * 5 * t))
    x = sum(np.sin(k * phase) / k for k in range(1, 5)) * 0.2 + 0.01 * rng.standard_normal(len(t))
    x[: int(silent_intro * FILE_RATE)] = 0
    x = np.clip(x, -1, 1)
    return (np.stack([x, 0.9 * x], axis=1) * 32767).astype(np.int16)


def write_music(root: Path, n_files: int, seconds: float, copies: int = 1) -> Path:
    """MUSIC layout: ``MUSIC_solo_videos.json`` and ``<class>/<id>.wav``; ``copies`` x the videos via links."""
    videos: dict[str, list[str]] = {slug(c): [] for c in INSTRUMENTS}
    names = list(videos)
    for i in range(n_files):
        cls = names[i % len(names)]
        vid = f"v{i:05d}"
        path = root / cls / f"{vid}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            sf.write(path, _recording(seconds, i, silent_intro=5.0), FILE_RATE, subtype="PCM_16")
        videos[cls].append(vid)
        for j in range(1, copies):
            link = root / cls / f"{vid}c{j}.wav"
            if not link.exists():
                link.hardlink_to(path)
            videos[cls].append(f"{vid}c{j}")
    (root / "MUSIC_solo_videos.json").write_text(json.dumps({"videos": videos}))
    return root


def write_vggsound(root: Path, n_clips: int, seconds: float = 10.0, copies: int = 1, n_classes: int = 20) -> Path:
    """VGGSound layout: ``vggsound.csv`` and ``<id>_000000.wav``; ``copies`` x the clips via links."""
    lines = []
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for i in range(n_clips):
        vid = f"y{i:06d}"
        path = root / "audio" / f"{vid}_000000.wav"
        if not path.exists():
            sf.write(path, _recording(seconds, 10_000 + i), FILE_RATE, subtype="PCM_16")
        split = "test" if i % 10 == 0 else "train"
        label = f"sound class {i % n_classes}"
        lines.append(f"{vid},0,{label},{split}")
        for j in range(1, copies):
            link = root / "audio" / f"{vid}c{j}_000000.wav"
            if not link.exists():
                link.hardlink_to(path)
            lines.append(f"{vid}c{j},0,{label},{split}")
    (root / "vggsound.csv").write_text("\n".join(lines) + "\n")
    return root


class _TreeMemory:
    """Peaks of the summed memory of this process and its children, sampled every 20 ms: resident
    (RSS, which counts a page shared by forked workers once per process) and proportional (PSS,
    which divides a shared page among the processes that share it)."""

    def __init__(self) -> None:
        self.peak = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> tuple[int, int]:
        me = psutil.Process()
        rss = pss = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                info = proc.memory_full_info()
            except psutil.Error:
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        return rss, pss

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss = self._sample()
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            time.sleep(0.02)

    def __enter__(self) -> _TreeMemory:
        self.peak, self.peak_pss = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _CropRecorder(StoredClips):
    """Stored clips that remember the start of every crop they read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.starts: list[tuple[int, int]] = []

    def _read(self, k: int, start: int) -> torch.Tensor:
        self.starts.append((k, start))
        return super()._read(k, start)


def crop_coverage(store: Path, clip_samples: int, draws: int = 200, seed: int = 0) -> float:
    """The share of the longest file's samples that ``draws`` training crops of it cover."""
    clips = _CropRecorder(store, clip_samples)
    k = int(clips.lengths.argmax())
    g = torch.Generator().manual_seed(seed)
    covered = np.zeros(int(clips.lengths[k]), dtype=bool)
    for _ in range(draws):
        clips.starts.clear()
        clips.random_crop(k, g)
        start = clips.starts[-1][1]  # the crop kept: the last one read
        covered[start : start + clip_samples] = True
    return float(covered.mean())


def _read_batches(store: Path, profile_name: str, n_batches: int, workers: int) -> dict[str, float]:
    p = get_profile(profile_name)
    clips = StoredClips(store, p.clip_samples)
    cfg = RunConfig(regime="weak", n_sources=2, profile=p.to_dict(), steps=n_batches)
    source = BatchSource(clips, cfg, p, p.batch_size, 0)
    loader = step_loader(source, 0, n_batches, workers=workers)
    with _TreeMemory() as memory:
        t0 = time.perf_counter()
        for _ in loader:
            pass
        seconds = time.perf_counter() - t0
    del loader  # its persistent workers end here, not when a later measurement has begun
    gc.collect()
    return {
        "batches_per_s": n_batches / seconds,
        "peak_rss_mb": memory.peak / 2**20,
        "peak_pss_mb": memory.peak_pss / 2**20,
    }


def bench_layout(
    layout: str, root: Path, work: Path, profile_name: str, n_batches: int, copies: int, workers: tuple[int, ...]
) -> dict[str, Any]:
    """Prepare ``root`` (manifests, then the train store) and read batches from it; the figures of one row."""
    p = get_profile(profile_name)
    t0 = time.perf_counter()
    manifests = prepare_data(root, work / "manifests", layout=layout, skip_bad=True, echo=None)
    report = prepare_store(manifests / "train.csv", work / "store", p.sample_rate, p.clip_samples)
    row: dict[str, Any] = {
        "layout": layout,
        "copies": copies,
        "train_files": report.kept,
        "train_hours": report.seconds / 3600,
        "prepare_s": time.perf_counter() - t0,
        "profile": p.name,
        "batch_size": p.batch_size,
        "batches": n_batches,
    }
    for w in workers:
        for key, value in _read_batches(work / "store", profile_name, n_batches, w).items():
            row[f"{key}_workers{w}"] = value
    row["crop_coverage"] = crop_coverage(work / "store", p.clip_samples)
    return row


def bench_data(
    out_dir: Path,
    music_files: int = 40,
    music_seconds: float = 180.0,
    vggsound_clips: int = 2000,
    scale: int = 10,
    profile_name: str = "paper",
    n_batches: int = 200,
    workers: tuple[int, ...] = (0, 2),
    keep: bool = False,
    on_row: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every row of the benchmark (see the module docstring), in ``out_dir`` (removed unless ``keep``).

    ``on_row`` is called with the rows so far after each one, so that a run that stops keeps them.
    """
    rows = []
    try:
        for copies in (1, scale):
            for layout in ("music", "vggsound"):
                data = out_dir / f"{layout}-data"  # the 1x files are reused by the links of the larger size
                if layout == "music":
                    root = write_music(data, music_files, music_seconds, copies)
                else:
                    root = write_vggsound(data, vggsound_clips, copies=copies)
                work = out_dir / f"{layout}-x{copies}"
                rows.append(bench_layout(layout, root, work, profile_name, n_batches, copies, workers))
                print(json.dumps(rows[-1]), flush=True)
                if on_row is not None:
                    on_row(rows)
    finally:
        if not keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    return rows
