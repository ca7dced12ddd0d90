"""Separation scores of the queries of one test mixture: bss_eval SDR/SIR/SAR, SI-SDR, CLAP similarity.

Which SDR: ``sdr`` is always the SDR of mir_eval's ``bss_eval_sources``
(BSS Eval v3, a 512-tap time-invariant distortion filter, no permutation
search: estimate ``n`` is scored against reference ``n`` and the other
references of the same mixture count as interference). That is the metric of
Mahmud et al. (2024). It is computed with ``fast_bss_eval`` and checked against
mir_eval 0.8.2 in ``tests/test_scores.py``. We also report

- ``sdri``: SDR improvement, SDR(estimate) - SDR(mixture used as the estimate);
- ``si_sdr``: scale-invariant SDR (Le Roux et al., 2019), zero-mean signals;
- ``input_sdr`` / ``input_si_sdr``: the unprocessed mixture as the estimate
  (the "mixture" baseline row of every table);
- ``clap_sim``: a reference-free score, the cosine similarity between the CLAP
  embedding of an estimate and that of its prompt.

Silence (peak amplitude <= ``SILENCE_PEAK``): a silent *reference* makes
bss_eval undefined for every estimate of that mixture (as in mir_eval, which
raises), so it raises ``ValueError`` naming the source. A silent *estimate*
(a model that output nothing) has undefined SDR/SIR/SAR/SI-SDR (0/0): its SDR
and SI-SDR are scored at ``SILENT_FLOOR_DB`` (-30 dB) so that it counts in every
mean (no model gains by answering with silence), its SIR and SAR are NaN,
and the other queries are scored normally.

Infinite values are kept: with a single reference SIR is +inf, and the mixture
used as the estimate has SAR = +inf (it is exactly a sum of the references, so
it holds no artefact; mir_eval prints a meaningless ~300 dB there).

Speed: bss_eval's cost is a block-Toeplitz solve that depends on the
references only; :func:`evaluate_regimes` scores every regime's estimates and
the mixture baseline of one test mixture with a single solve (about 0.3 s for
N = 2 and 1 s for N = 4 on 2 CPU cores, whatever the number of regimes).
Aggregating these rows into the study's result tables is :mod:`weaksep.tables`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import fast_bss_eval
import numpy as np
import torch

if TYPE_CHECKING:
    from weaksep.clap.base import ClapBackend

FILTER_LENGTH = 512  # taps of the BSS Eval distortion filter (mir_eval's default)
SILENCE_PEAK = 1e-8  # peak amplitude (-160 dBFS) at or below which a signal counts as silent
# A silent estimate has no SDR; it is scored at this floor (never dropped from a
# mean), so that no model gains by answering a hard query with silence.
SILENT_FLOOR_DB = -30.0
MIXTURE = "mixture"  # regime name of the unprocessed-mixture baseline


def _as_2d_float64(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, T) or (T,), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}); expected (N, T) with N, T >= 1")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return x


def _check_pair(references: Any, estimates: Any) -> tuple[np.ndarray, np.ndarray]:
    ref = _as_2d_float64(references, "references")
    est = _as_2d_float64(estimates, "estimates")
    if ref.shape != est.shape:
        raise ValueError(f"references and estimates must have the same shape (N, T), got {ref.shape} and {est.shape}")
    silent = np.flatnonzero(np.max(np.abs(ref), axis=1) <= SILENCE_PEAK)
    if silent.size:
        raise ValueError(
            f"reference source(s) {silent.tolist()} are silent (peak <= {SILENCE_PEAK}); "
            "bss_eval is undefined for a mixture with a silent reference"
        )
    return ref, est


def _silent_rows(x: np.ndarray) -> np.ndarray:
    return np.max(np.abs(x), axis=1) <= SILENCE_PEAK


def _solve_with_numpy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a x = b`` for the batched (…, M, M) systems of bss_eval, solved by numpy's LAPACK.

    In a process that has trained a model, torch 2.9.1's MKL ``linalg.solve``
    was seen to fail on these well-conditioned, symmetric positive-definite
    systems ("Parameter 6 was incorrect on entry to DLASWP"); numpy's
    OpenBLAS LAPACK solves them in every process state.
    """
    return torch.from_numpy(np.linalg.solve(a.detach().cpu().numpy(), b.detach().cpu().numpy()))


# fast_bss_eval calls its module-level ``solve``; route it to numpy (see above).
fast_bss_eval.torch.metrics.solve = _solve_with_numpy


def _coherences(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BSS Eval square cosines of every estimate against every reference, in one solve.

    Args:
        ref: (N, T) non-silent references; est: (M, T) estimates, any M.
    Returns:
        ``coh_sdr`` (N, M): |s_target|^2 / |est|^2 of estimate m taken as the
        target n; ``coh_sar`` (M,): |s_target + e_interf|^2 / |est|^2 (the
        projection on all references, independent of the target).
    """
    # The block-Toeplitz system of the references (N*512 unknowns) dominates the
    # cost and does not depend on the estimates, so every estimate of every
    # regime and the mixture share one factorisation. Torch backend in float64:
    # fast_bss_eval 0.1.4's numpy backend breaks under numpy 2 (batched
    # np.linalg.solve), and float64 is what makes it agree with mir_eval.
    coh_sdr, coh_sar = fast_bss_eval.torch.square_cosine_metrics(
        torch.from_numpy(ref), torch.from_numpy(est), filter_length=FILTER_LENGTH, pairwise=True
    )
    return coh_sdr.numpy(), coh_sar.numpy()[0]


def _coherence_db(coh: np.ndarray) -> np.ndarray:
    """10 log10(c / (1 - c)), c clipped to [0, 1] as fast_bss_eval does (so +-inf at the ends)."""
    coh = np.clip(coh, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(coh / (1 - coh))


def _bss_eval_columns(ref: np.ndarray, est: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """SDR/SIR/SAR of estimate m against reference ``targets[m]``; a silent estimate gets the SDR floor."""
    t = ref.shape[1]
    if t < FILTER_LENGTH:
        raise ValueError(f"signals have {t} samples; bss_eval needs at least {FILTER_LENGTH} (its filter length)")
    silent = _silent_rows(est)
    if silent.any():
        # Each estimate is projected on the references independently of the
        # others, so a silent one is swapped for a non-silent placeholder (the
        # first reference) and its result discarded.
        est = est.copy()
        est[silent] = ref[0]
    coh_sdr, coh_sar = _coherences(ref, est)
    c_sdr = coh_sdr[targets, np.arange(est.shape[0])]
    with np.errstate(divide="ignore", invalid="ignore"):
        c_sir = c_sdr / coh_sar
    out = {"sdr": _coherence_db(c_sdr), "sir": _coherence_db(c_sir), "sar": _coherence_db(coh_sar)}
    out["sdr"][silent] = SILENT_FLOOR_DB
    out["sir"][silent] = np.nan  # no interference or artefact in nothing: these stay undefined
    out["sar"][silent] = np.nan
    return out


def bss_eval(references: Any, estimates: Any) -> dict[str, np.ndarray]:
    """SDR, SIR and SAR (dB) of mir_eval's ``bss_eval_sources``, without permutation.

    Args:
        references: (N, T) true sources of one mixture (Tensor or ndarray, any float dtype).
        estimates: (N, T) estimates; estimate ``n`` is scored against reference ``n``.

    Returns:
        ``{"sdr", "sir", "sar"}``, each a float64 array of shape (N,), in dB. A
        silent estimate has SDR ``SILENT_FLOOR_DB`` and NaN SIR and SAR (see the
        module docstring).

    Raises:
        ValueError: shapes differ, non-finite samples, T < 512, or a silent reference.
    """
    ref, est = _check_pair(references, estimates)
    return _bss_eval_columns(ref, est, np.arange(ref.shape[0]))


def si_sdr(reference: Any, estimate: Any) -> np.ndarray:
    """Scale-invariant SDR (Le Roux et al., 2019) in dB, per source.

    Both signals are made zero-mean first (as in the paper's definition).
    ``SI-SDR = 10 log10(|a s|^2 / |a s - e|^2)`` with ``a = <e, s> / |s|^2``.

    Args:
        reference, estimate: (N, T) or (T,).

    Returns:
        (N,) float64; ``SILENT_FLOOR_DB`` where the estimate is silent. Raises
        ``ValueError`` on a silent reference.
    """
    ref, est = _check_pair(reference, estimate)
    ref = ref - ref.mean(axis=1, keepdims=True)
    est = est - est.mean(axis=1, keepdims=True)
    out = np.full(ref.shape[0], SILENT_FLOOR_DB)
    ok = ~_silent_rows(est)
    r, e = ref[ok], est[ok]
    scale = np.sum(e * r, axis=1, keepdims=True) / np.sum(r * r, axis=1, keepdims=True)
    target = scale * r
    with np.errstate(divide="ignore"):
        out[ok] = 10 * np.log10(np.sum(target**2, axis=1) / np.sum((e - target) ** 2, axis=1))
    return out


def _tile_mixture(mixture: Any, n: int, t: int) -> np.ndarray:
    mix = _as_2d_float64(mixture, "mixture")
    if mix.shape != (1, t):
        raise ValueError(f"mixture must have shape ({t},) to match the references, got {mix.shape}")
    return np.repeat(mix, n, axis=0)


def _score_estimate_sets(
    references: Any, estimate_sets: Mapping[str, Any], mixture: Any
) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    """bss_eval and SI-SDR of several (N, T) estimate sets and of the mixture, with one solve.

    Returns ``({name: {"sdr", "sir", "sar", "si_sdr"}}, N)`` with the mixture under ``MIXTURE``.
    """
    ref = _as_2d_float64(references, "references")
    n, t = ref.shape
    mix = _tile_mixture(mixture, n, t)
    sets: dict[str, np.ndarray] = {}
    for name, est in estimate_sets.items():
        if name == MIXTURE:
            raise ValueError(f"{MIXTURE!r} is reserved for the unprocessed mixture; rename that estimate set")
        sets[name] = _check_pair(ref, est)[1]
    _check_pair(ref, mix)  # raises on a silent reference
    stacked = np.concatenate([*sets.values(), mix])
    targets = np.tile(np.arange(n), len(sets) + 1)
    scores = _bss_eval_columns(ref, stacked, targets)
    out = {}
    for k, name in enumerate([*sets, MIXTURE]):
        est = mix if name == MIXTURE else sets[name]
        out[name] = {m: v[k * n : (k + 1) * n] for m, v in scores.items()}
        out[name]["si_sdr"] = si_sdr(ref, est)
    return out, n


def evaluate_queries(
    references: Any, estimates: Any, mixture: Any, *, entities: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Score every query of one test mixture: one row per source.

    Args:
        references: (N, T) true sources; estimates: (N, T), estimate ``n`` is the
            answer to the query of source ``n``; mixture: (T,) what the model heard.
        entities: optional N query texts, stored in the rows as ``entity``.

    Returns:
        N dicts with ``query`` (index n), [``entity``], ``sdr``, ``sir``, ``sar``,
        ``sdri``, ``si_sdr`` (the estimate) and ``input_sdr``, ``input_sir``,
        ``input_sar``, ``input_si_sdr`` (the mixture as the estimate), in dB.
    """
    rows = evaluate_regimes(references, {"estimate": estimates}, mixture, entities=entities)
    n = len(rows) // 2  # the estimate's N rows, then the mixture's
    out = []
    for est, mix in zip(rows[:n], rows[n:]):
        row = {k: v for k, v in est.items() if k != "regime"}
        row.update({f"input_{m}": mix[m] for m in ("sdr", "sir", "sar", "si_sdr")})
        out.append(row)
    return out


def evaluate_regimes(
    references: Any,
    estimates: Mapping[str, Any],
    mixture: Any,
    *,
    entities: Sequence[str] | None = None,
    include_mixture: bool = True,
) -> list[dict[str, Any]]:
    """Score the answers of several models to the queries of one test mixture, with one solve.

    The costly part of bss_eval depends on the references only, so scoring
    every regime (and the mixture baseline) of a test mixture together is
    about as fast as scoring one.

    Args:
        references: (N, T); estimates: regime name -> (N, T) estimates;
        mixture: (T,); entities: optional N query texts.
        include_mixture: add the rows of regime ``"mixture"`` (the mixture as the estimate).

    Returns:
        One dict per regime and query: ``regime``, ``query``, [``entity``],
        ``sdr``, ``sir``, ``sar``, ``sdri``, ``si_sdr`` (dB; ``sdri`` 0 for the mixture).
    """
    scores, n = _score_estimate_sets(references, estimates, mixture)
    if entities is not None and len(entities) != n:
        raise ValueError(f"got {len(entities)} entities for {n} sources")
    names = [*estimates, MIXTURE] if include_mixture else list(estimates)
    mix_sdr = scores[MIXTURE]["sdr"]
    rows = []
    for name in names:
        sc = scores[name]
        for i in range(n):
            row: dict[str, Any] = {"regime": name, "query": i}
            if entities is not None:
                row["entity"] = entities[i]
            row.update({m: float(sc[m][i]) for m in ("sdr", "sir", "sar")})
            row["sdri"] = float(sc["sdr"][i] - mix_sdr[i])
            row["si_sdr"] = float(sc["si_sdr"][i])
            rows.append(row)
    return rows


@torch.no_grad()
def clap_similarity(
    backend: ClapBackend, estimates: torch.Tensor, entities: Sequence[str], sample_rate: int
) -> np.ndarray:
    """Reference-free score: cosine similarity of CLAP(estimate) and CLAP("The sound of <entity>").

    Args:
        backend: a frozen :class:`weaksep.clap.base.ClapBackend`.
        estimates: (B, T) waveforms at ``sample_rate`` Hz.
        entities: B entity names (the backend applies its prompt template).
    Returns:
        (B,) float64 in [-1, 1].
    """
    return clap_scores(backend, estimates, entities, list(entities), sample_rate)[0]


@torch.no_grad()
def clap_scores(
    backend: ClapBackend, estimates: torch.Tensor, entities: Sequence[str], classes: Sequence[str], sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """CLAP similarity to the prompt and whether the CLAP names the prompt's entity.

    Args:
        estimates: (B, T) waveforms at ``sample_rate`` Hz.
        entities: B entity names, each one of ``classes``.
        classes: the entity vocabulary for zero-shot classification.
    Returns:
        (B,) cosine similarities and (B,) booleans: the estimate's most similar
        class prompt is its own entity (the CLAP "recognises" it).
    """
    if estimates.dim() != 2 or estimates.shape[0] != len(entities):
        raise ValueError(
            f"estimates must have shape (B, T) with B = {len(entities)} entities, got {tuple(estimates.shape)}"
        )
    unknown = sorted(set(entities) - set(classes))
    if unknown:
        raise ValueError(f"entities {unknown} are not among the classes {list(classes)}")
    audio = backend.embed_audio(estimates.float().to(backend._device()), sample_rate)
    text = backend.embed_text(list(entities)).to(audio.device)
    vocab = backend.embed_text(list(classes)).to(audio.device)
    sim = (audio * text).sum(dim=-1).double().cpu().numpy()
    top = (audio @ vocab.T).argmax(dim=-1).cpu().numpy()
    correct = np.array([classes[i] == e for i, e in zip(top, entities)])
    return sim, correct
