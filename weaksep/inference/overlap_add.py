"""Run a model on a signal of any length in overlapping windows and crossfade the results (overlap-add).

A separator is trained on clips of one length. A longer signal is cut into
windows of that length that overlap by ``overlap`` (a fraction of the
window), each window is processed, and the outputs are weighted by a
crossfade window and added back together. The crossfade rises as sin² and
falls as cos² over the overlap, so the weights of overlapping windows sum to
exactly one: a signal the model passes through unchanged comes out
unchanged, without seams at the window boundaries. At ``overlap=0.5`` the
window is a Hann window at 50 % overlap.

Nothing here knows about separators or prompts: :func:`overlap_add` takes any
function from windows to outputs (:mod:`weaksep.inference.waveform` passes the
separator).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

PROGRESS_MIN_WINDOWS = 5  # a progress bar for inputs of at least this many windows


def crossfade_window(length: int, ramp: int) -> Tensor:
    """(length,) weights: sin² rise over ``ramp`` samples, flat 1, cos² fall over ``ramp``.

    Shifted by ``length - ramp`` samples, the fall of one window and the rise
    of the next add up to one at every sample.
    """
    if not 0 <= 2 * ramp <= length:
        raise ValueError(f"crossfade ramp {ramp} must be within 0..{length // 2} for a window of {length}")
    w = torch.ones(length, dtype=torch.float64)
    if ramp:
        phase = (torch.arange(ramp, dtype=torch.float64) + 0.5) * (math.pi / (2 * ramp))
        w[:ramp] = torch.sin(phase) ** 2
        w[length - ramp :] = torch.cos(phase) ** 2
    return w.float()


def window_count(length: int, window: int, overlap: float = 0.5) -> int:
    """How many windows ``overlap_add`` processes for a signal of ``length`` samples."""
    if length <= window:
        return 1
    ramp = round(overlap * window)
    hop = window - ramp
    return 1 + math.ceil(max(length + 2 * ramp - window, 0) / hop)


def overlap_add(
    signal: Tensor,
    process: Callable[[Tensor], Tensor],
    window: int,
    overlap: float = 0.5,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "separating",
) -> Tensor:
    """Run ``process`` on overlapping windows of ``signal`` and crossfade the results.

    Args:
        signal: (B, T) waveforms.
        process: maps windows (n, window) to outputs (n, P, window), P the same every call.
        window: window length in samples.
        overlap: share of the window that overlaps the next one, 0..0.5 (0.5: Hann at 50 %).
        batch_size: windows per ``process`` call.
        progress: show a tqdm bar over windows (only for inputs of several windows).

    Returns:
        (B, P, T). A signal no longer than ``window`` is processed once, zero-padded
        to ``window``. Otherwise ``overlap * window`` zeros pad its start, so that the
        first window's rise and the last window's fall lie outside the signal.
    """
    if signal.dim() != 2:
        raise ValueError(f"overlap_add expects (batch, samples), got shape {tuple(signal.shape)}")
    if not 0 <= overlap <= 0.5:
        raise ValueError(f"overlap must be within 0..0.5, got {overlap}")
    b, t = signal.shape
    if t == 0:
        raise ValueError("cannot separate an empty signal (0 samples)")
    ramp = round(overlap * window)
    hop = window - ramp
    if t <= window:
        ramp, total = 0, window
    else:
        total = window + hop * (window_count(t, window, overlap) - 1)
    padded = torch.nn.functional.pad(signal, (ramp, total - ramp - t))
    frames = padded.unfold(-1, window, hop).reshape(-1, window)  # (B * n_win, window), batch-major
    n_win = frames.shape[0] // b

    from tqdm import tqdm  # a text bar: the command line is its main user

    outs = []
    with tqdm(
        total=frames.shape[0], desc=desc, unit="window", disable=not progress or n_win < PROGRESS_MIN_WINDOWS
    ) as bar:
        for i in range(0, frames.shape[0], batch_size):
            chunk = frames[i : i + batch_size]
            y = process(chunk)
            if y.dim() != 3 or y.shape[0] != chunk.shape[0] or y.shape[-1] != window:
                raise ValueError(
                    f"process must map ({chunk.shape[0]}, {window}) to (n, P, {window}), got {tuple(y.shape)}"
                )
            outs.append(y.to(signal.device, torch.float32))
            bar.update(chunk.shape[0])
    est = torch.cat(outs).reshape(b, n_win, -1, window)  # (B, n_win, P, window)
    weights = crossfade_window(window, ramp).to(signal.device)  # all ones for a single window (ramp 0)
    out = torch.zeros(b, est.shape[2], total, device=signal.device)
    for k in range(n_win):
        out[..., k * hop : k * hop + window] += est[:, k] * weights
    return out[..., ramp : ramp + t]
