"""Separate sound files with a trained separator: what ``weaksep separate`` runs.

``separate_files`` takes files, folders (searched recursively for every format
soundfile reads) and glob patterns in one call, loads the model once, writes
the outputs of each input in ``OUTDIR/<input stem>/``, an optional residual
(the mixture minus the estimates, so that the outputs add back up to the
input), a CLAP confidence score per output in ``OUTDIR/scores.csv`` (see
:mod:`weaksep.inference.confidence`), and skips bad inputs with one line each.
``separate_file`` separates one file into one folder.

The pieces live beside this module: :mod:`weaksep.inference.waveform` loads a
checkpoint and separates a waveform tensor (``separate_waveform``, re-exported
here), :mod:`weaksep.inference.overlap_add` stitches the windows of a long input,
:mod:`weaksep.inference.audio_files` finds the inputs and names and writes the outputs,
and :func:`weaksep.tools.bench.benchmark_folder` measures the whole path.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import Tensor

from ..data.manifest import read_audio
from ..io import atomic_write_text
from .audio_files import SCORES_FILE, expand_inputs, input_folder_names, output_paths, probe_audio, write_outputs
from .waveform import LoadedSeparator, check_prompts, default_checkpoint, load_for_inference, separate_waveform

if TYPE_CHECKING:
    from .confidence import ConfidenceThreshold

# The names users import from here (README, notebooks/06_try_it.ipynb): the tensor-level
# separate_waveform and read_audio are re-exported so that one import serves a notebook.
__all__ = [
    "LoadedSeparator",
    "load_for_inference",
    "read_audio",
    "separate_file",
    "separate_files",
    "separate_waveform",
]

SCORE_COLUMNS = ("input", "prompt", "output", "estimate_score", "mixture_score", "absent_warning")


def separate_file(
    input_path: str | Path,
    prompts: Sequence[str],
    out_dir: str | Path,
    checkpoint: str | Path | LoadedSeparator,
    *,
    residual: bool = False,
    clap_checkpoint: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    expected_profile: str | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> list[Path]:
    """Separate one sound file into ``<out_dir>/<prompt slug>.wav``, one file per prompt.

    The outputs have the input's sample rate, length and channel count (32-bit
    float WAV); with ``residual``, ``<out_dir>/residual.wav`` holds the input
    minus the sum of the estimates. Everything is checked and computed before
    anything is written, and the files appear all together or not at all.
    ``kwargs`` go to :func:`separate_waveform` (``overlap``, ``batch_size``,
    ``template``, ``normalize``). Returns the written paths. For several
    inputs, folders, scores and ``OUTDIR/<input stem>/`` use :func:`separate_files`.
    """
    paths = output_paths(prompts, out_dir, residual)
    wav, rate = read_audio(input_path)
    sep = (
        checkpoint
        if isinstance(checkpoint, LoadedSeparator)
        else load_for_inference(checkpoint, clap_checkpoint, tokenizer_dir, expected_profile)
    )
    est = sep.separate(wav, rate, prompts, progress=progress, **kwargs)
    return write_outputs(with_residual(wav, est) if residual else est, rate, paths)


def with_residual(mixture: Tensor, estimates: Tensor) -> Tensor:
    """(P, C, T) estimates -> (P + 1, C, T): the last is ``mixture`` (C, T) minus their sum.

    Written as 32-bit float, the outputs then add back up to the input up to
    float32 rounding (a relative error of about 1e-7).
    """
    return torch.cat([estimates, (mixture.float() - estimates.sum(dim=0)).unsqueeze(0)])


def _absent_threshold(
    sep: LoadedSeparator, confidence: str | Path | None, template: bool
) -> tuple[ConfidenceThreshold | None, str]:
    """The absent-sound threshold to use with ``sep`` (or ``None``) and a one-line note on it."""
    from .confidence import default_confidence_path, load_threshold

    if confidence is None:
        name = (sep.run_config.get("profile") or {}).get("name") if isinstance(sep.run_config, dict) else None
        if not name:
            return (
                None,
                f"no absent-sound warnings: checkpoint {sep.path} names no profile, so no default "
                f"confidence file; pass one",
            )
        path, required = default_confidence_path(name), False
    else:
        path, required = Path(confidence), True
    if not Path(sep.clap_path).is_file():
        return None, f"no absent-sound warnings: the CLAP file {sep.clap_path} cannot be hashed"
    threshold, note = load_threshold(path, sep.clap_path, required=required)
    if threshold is not None and not template:
        return None, (
            "no absent-sound warnings without the prompt template: the threshold was measured on templated prompts"
        )
    return threshold, note


def _stderr(message: str) -> None:
    print(f"weaksep: {message}", file=sys.stderr)


def separate_files(
    inputs: str | Path | Sequence[str | Path],
    prompts: Sequence[str],
    out_dir: str | Path,
    checkpoint: str | Path | LoadedSeparator | None = None,
    *,
    residual: bool = False,
    confidence: str | Path | None = None,
    clap_checkpoint: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    expected_profile: str | None = None,
    template: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = _stderr,
    echo: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Separate many sound files with one model load; write the outputs and their confidence scores.

    Args:
        inputs: files, folders (searched recursively) and glob patterns, see
            :func:`expand_inputs`; the output folder itself is never an input.
        prompts: P texts, one output per prompt and input.
        out_dir: the outputs of each input go to ``<out_dir>/<name>/<prompt
            slug>.wav`` (and ``residual.wav``), ``<name>`` its stem made unique
            by :func:`input_folder_names`; existing files of those names are
            replaced. ``<out_dir>/scores.csv`` gets this call's scores.
        checkpoint: a separator checkpoint, a :class:`LoadedSeparator`, or
            ``None`` for :func:`default_checkpoint`; loaded once.
        residual: also write ``residual.wav``, the input minus the sum of the
            estimates (float WAV, so the outputs add back up to the input).
        confidence: the absent-sound threshold file (an error if unreadable);
            ``None``: ``confidence.json`` in the results folder of the
            checkpoint's profile, or no warnings (with a note) when there is
            none or it belongs to another CLAP.
        template: put the prompts into the CLAP's template, for the separation
            and the scores alike.
        progress: a bar over windows for long inputs.
        log: receives one-line messages ``skipped: ...``, ``warning: ...`` and
            ``note: ...`` (default: printed to stderr as ``weaksep: ...``).
        echo: receives one line per written output (default: none).
        kwargs: go to :func:`separate_waveform` (``overlap``, ``batch_size``, ``normalize``).

    Returns:
        One row per (separated input, prompt), columns ``input``, ``prompt``,
        ``output`` (the file), ``estimate_score`` (CLAP cosine similarity of
        the estimate and the prompt), ``mixture_score`` (of the input and the
        prompt; see :mod:`weaksep.inference.confidence`) and ``absent_warning`` (the
        mixture score is below the threshold; ``<NA>`` without a threshold),
        as written to ``scores.csv``. ``attrs["skipped"]`` lists one message
        per skipped input, ``attrs["timing"]`` the seconds spent loading the
        model and in all (``model_load_seconds``, ``total_seconds``) and the
        seconds of audio separated (``audio_seconds``).

    Raises:
        ValueError, FileNotFoundError: bad prompts, no input that can be read
            (with one input, its own message), a checkpoint or a named
            ``confidence`` file that cannot be loaded; nothing is written then.
            A bad input among good ones is skipped instead, the others are
            written.
    """
    start = time.perf_counter()
    log = log or (lambda message: None)
    out_dir = Path(out_dir)
    names = [p.name for p in output_paths(prompts, ".", residual)]  # checks the prompts before any slow work
    prompts = check_prompts(prompts)
    files, problems = expand_inputs(inputs, exclude=out_dir)
    readable = []
    for f in files:
        problem = probe_audio(f)
        if problem:
            problems.append(problem)
        else:
            readable.append(f)
    if not readable:
        if len(problems) == 1:
            raise ValueError(problems[0])
        for problem in problems:
            log(f"skipped: {problem}")
        raise ValueError(f"nothing to separate: all {len(problems)} inputs were skipped")
    for problem in problems:
        log(f"skipped: {problem}")

    loading = time.perf_counter()
    sep = (
        checkpoint
        if isinstance(checkpoint, LoadedSeparator)
        else load_for_inference(
            checkpoint if checkpoint is not None else default_checkpoint(),
            clap_checkpoint,
            tokenizer_dir,
            expected_profile,
        )
    )
    load_seconds = time.perf_counter() - loading
    threshold, note = _absent_threshold(sep, confidence, template)  # before separating: a bad file fails early

    from .confidence import confidence_scores

    rows: list[dict[str, Any]] = []
    skipped = list(problems)
    audio_seconds = 0.0
    n_inputs = len(readable) + len(problems)
    for path, folder in zip(readable, input_folder_names(readable)):
        try:
            wav, rate = read_audio(path)
            est = sep.separate(wav, rate, prompts, progress=progress, template=template, **kwargs)  # (P, C, T)
        except (FileNotFoundError, ValueError) as e:  # e.g. NaN samples, found only when reading it all
            message = str(e) if str(path) in str(e) else f"audio file {path} cannot be separated: {e}"
            if n_inputs == 1:  # one input: its error is the call's
                raise ValueError(message) from e
            skipped.append(message)
            log(f"skipped: {message}")
            continue
        written = write_outputs(
            with_residual(wav, est) if residual else est, rate, [out_dir / folder / n for n in names]
        )
        window = max(1, round(sep.clip_samples * rate / sep.sample_rate))  # the training clip, at this rate
        est_scores, mix_scores = confidence_scores(sep.clap, wav, est, rate, prompts, window, template=template)
        audio_seconds += wav.shape[-1] / rate
        for prompt, out, e_score, m_score in zip(prompts, written, est_scores, mix_scores):
            warn = None if threshold is None else bool(threshold.warns(float(m_score)))
            rows.append(
                {
                    "input": str(path),
                    "prompt": prompt,
                    "output": str(out),
                    "estimate_score": float(e_score),
                    "mixture_score": float(m_score),
                    "absent_warning": warn,
                }
            )
            if echo:
                echo(f"{path}: {prompt!r} -> {out}  (CLAP score {e_score:.3f}; mixture {m_score:.3f})")
            if warn:
                log(
                    f"warning: {path}: {prompt!r} may be absent: the mixture's CLAP score {m_score:.3f} is "
                    f"{threshold.explain()}"
                )
        if residual and echo:
            echo(f"{path}: residual -> {written[-1]}")

    if not rows:
        raise ValueError(f"nothing separated: all {n_inputs} inputs were skipped")
    scores = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    scores["absent_warning"] = scores["absent_warning"].astype("boolean")
    atomic_write_text(out_dir / SCORES_FILE, scores.to_csv(index=False))
    scores.attrs["skipped"] = skipped
    scores.attrs["timing"] = {
        "model_load_seconds": load_seconds,
        "total_seconds": time.perf_counter() - start,
        "audio_seconds": audio_seconds,
    }
    log(f"note: {note}")
    log(
        f"note: separated {len(set(scores['input']))} of {n_inputs} input(s) ({audio_seconds:.1f} s of audio) "
        f"with {sep.path}; scores in {out_dir / SCORES_FILE}"
    )
    return scores
