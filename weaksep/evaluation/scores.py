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
Aggregating these rows into the study's result tables is :mod:`weaksep.reproduce.tables`.

Device: every scoring function takes ``backend``. With the default ``"auto"``,
signals that include a CUDA tensor are scored on that GPU in float64 with torch
(the same fast_bss_eval functions, the solve done there by ``torch.linalg.solve``),
so that validation and evaluation need not move estimates to the CPU; anything
else takes the numpy path, which is the reference (``tests/test_scores.py``
keeps the two within 0.01 dB). ``backend="torch"`` forces the torch path (on
the CPU when no input is on a GPU), ``backend="numpy"`` the reference. Either
way the scores come back as float64 numpy arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

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
Backend = Literal["auto", "numpy", "torch"]  # where bss_eval and SI-SDR are computed (see the module docstring)
BACKENDS = ("auto", "numpy", "torch")


def scoring_device(backend: Backend, *signals: Any) -> torch.device | None:
    """Where :func:`bss_eval`, :func:`si_sdr` and :func:`evaluate_regimes` compute: the device
    of the torch path, or None for the numpy reference path.

    ``"auto"``: the CUDA device of the signals if one is a CUDA tensor, else None.
    ``"torch"``: the signals' non-CPU device if any, else the CPU. ``"numpy"``: None.
    Raises ``ValueError`` for another backend or signals on two different non-CPU devices.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    devices = {x.device for x in signals if isinstance(x, torch.Tensor) and x.device.type != "cpu"}
    if len(devices) > 1:
        raise ValueError(f"the signals are on several devices {sorted(map(str, devices))}; put them on one")
    device = devices.pop() if devices else None
    if backend == "torch":
        return device or torch.device("cpu")
    if backend == "auto" and device is not None and device.type == "cuda":
        return device
    return None  # numpy: non-CUDA accelerators (e.g. MPS) have no float64, so they take this path too


def _check_2d(shape: tuple[int, ...], all_finite: bool, name: str) -> None:
    """The shape and sample checks shared by both paths (``shape`` after a (T,) became (1, T))."""
    if len(shape) != 2:
        raise ValueError(f"{name} must have shape (N, T) or (T,), got shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {shape}); expected (N, T) with N, T >= 1")
    if not all_finite:
        raise ValueError(f"{name} contains NaN or infinite samples")


def _check_shapes_and_references(ref_shape: tuple[int, ...], est_shape: tuple[int, ...], ref_peak: Any) -> None:
    """Raise unless the shapes match and every reference's peak (N,) is above ``SILENCE_PEAK``."""
    if ref_shape != est_shape:
        raise ValueError(f"references and estimates must have the same shape (N, T), got {ref_shape} and {est_shape}")
    silent = np.flatnonzero(np.asarray(ref_peak) <= SILENCE_PEAK)
    if silent.size:
        raise ValueError(
            f"reference source(s) {silent.tolist()} are silent (peak <= {SILENCE_PEAK}); "
            "bss_eval is undefined for a mixture with a silent reference"
        )


def _as_2d_float64(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    _check_2d(x.shape, bool(np.all(np.isfinite(x))), name)
    return x


def _check_pair(references: Any, estimates: Any) -> tuple[np.ndarray, np.ndarray]:
    ref = _as_2d_float64(references, "references")
    est = _as_2d_float64(estimates, "estimates")
    _check_shapes_and_references(ref.shape, est.shape, np.max(np.abs(ref), axis=1))
    return ref, est


def _silent_rows(x: np.ndarray) -> np.ndarray:
    return np.max(np.abs(x), axis=1) <= SILENCE_PEAK


def _solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a x = b`` for the batched (…, M, M) systems of bss_eval, on the tensors' device.

    On the CPU numpy's LAPACK solves them: in a process that has trained a
    model, torch 2.9.1's MKL ``linalg.solve`` was seen to fail on these
    well-conditioned, symmetric positive-definite systems ("Parameter 6 was
    incorrect on entry to DLASWP"); numpy's OpenBLAS LAPACK solves them in every
    process state. On a GPU ``torch.linalg.solve`` (cuSOLVER, no MKL) keeps the
    solve, the costly part, there.
    """
    if a.device.type != "cpu":
        return torch.linalg.solve(a, b)
    return torch.from_numpy(np.linalg.solve(a.detach().cpu().numpy(), b.detach().cpu().numpy()))


# fast_bss_eval calls its module-level ``solve``; route it to ours (see above).
fast_bss_eval.torch.metrics.solve = _solve


def _coherences_tensor(ref: torch.Tensor, est: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BSS Eval square cosines of every estimate against every reference, in one solve, on their device.

    Args:
        ref: (N, T) non-silent references; est: (M, T) estimates, any M; float64, one device.
    Returns:
        ``coh_sdr`` (N, M): |s_target|^2 / |est|^2 of estimate m taken as the
        target n; ``coh_sar`` (M,): |s_target + e_interf|^2 / |est|^2 (the
        projection on all references, independent of the target).
    """
    # The block-Toeplitz system of the references (N*512 unknowns) dominates the
    # cost and does not depend on the estimates, so every estimate of every
    # regime and the mixture share one factorisation. Torch backend in float64:
    # fast_bss_eval 0.1.4's numpy backend breaks under numpy 2 (batched
    # np.linalg.solve), and float64 is what makes it agree with mir_eval. Not its
    # bss_eval_sources: that one needs M = N (no shared solve across regimes).
    coh_sdr, coh_sar = fast_bss_eval.torch.square_cosine_metrics(ref, est, filter_length=FILTER_LENGTH, pairwise=True)
    return coh_sdr, coh_sar[0]


def _coherences(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_coherences_tensor` of float64 arrays (the reference path, on the CPU)."""
    coh_sdr, coh_sar = _coherences_tensor(torch.from_numpy(ref), torch.from_numpy(est))
    return coh_sdr.numpy(), coh_sar.numpy()


def _coherence_db(coh: np.ndarray) -> np.ndarray:
    """10 log10(c / (1 - c)), c clipped to [0, 1] as fast_bss_eval does (so +-inf at the ends)."""
    coh = np.clip(coh, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(coh / (1 - coh))


def _check_filter_length(t: int) -> None:
    if t < FILTER_LENGTH:
        raise ValueError(f"signals have {t} samples; bss_eval needs at least {FILTER_LENGTH} (its filter length)")


def _bss_eval_columns(ref: np.ndarray, est: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """SDR/SIR/SAR of estimate m against reference ``targets[m]``; a silent estimate gets the SDR floor."""
    _check_filter_length(ref.shape[1])
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


def _si_sdr_columns(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    """SI-SDR (dB, (N,)) of checked (N, T) float64 arrays; see :func:`si_sdr`."""
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


# --- the torch path: the same steps on the signals' device, float64 --------------
# Each function mirrors the numpy one above it by name; the scores come back as
# numpy arrays (N or M values), the signals never leave their device.


def _as_2d_tensor(x: Any, name: str, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        x = x.detach().to(device=device, dtype=torch.float64)
    else:
        x = torch.as_tensor(np.asarray(x, dtype=np.float64), device=device)
    if x.dim() == 1:
        x = x[None]
    _check_2d(tuple(x.shape), bool(torch.isfinite(x).all()), name)
    return x


def _check_pair_tensor(references: Any, estimates: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ref = _as_2d_tensor(references, "references", device)
    est = _as_2d_tensor(estimates, "estimates", device)
    _check_shapes_and_references(tuple(ref.shape), tuple(est.shape), ref.abs().amax(dim=1).cpu().numpy())
    return ref, est


def _silent_rows_tensor(x: torch.Tensor) -> torch.Tensor:
    return x.abs().amax(dim=1) <= SILENCE_PEAK


def _coherence_db_tensor(coh: torch.Tensor) -> torch.Tensor:
    coh = coh.clamp(0.0, 1.0)
    return 10 * torch.log10(coh / (1 - coh))  # torch gives +-inf and NaN where numpy would warn


def _bss_eval_columns_tensor(ref: torch.Tensor, est: torch.Tensor, targets: np.ndarray) -> dict[str, np.ndarray]:
    _check_filter_length(ref.shape[1])
    silent = _silent_rows_tensor(est)
    est = torch.where(silent[:, None], ref[0], est)  # the placeholder of the numpy path
    coh_sdr, coh_sar = _coherences_tensor(ref, est)
    c_sdr = coh_sdr[torch.as_tensor(targets, device=ref.device), torch.arange(est.shape[0], device=ref.device)]
    out = {
        "sdr": _coherence_db_tensor(c_sdr),
        "sir": _coherence_db_tensor(c_sdr / coh_sar),
        "sar": _coherence_db_tensor(coh_sar),
    }
    undefined = {"sdr": SILENT_FLOOR_DB, "sir": float("nan"), "sar": float("nan")}
    return {m: torch.where(silent, undefined[m], v).cpu().numpy() for m, v in out.items()}


def _si_sdr_columns_tensor(ref: torch.Tensor, est: torch.Tensor) -> np.ndarray:
    ref = ref - ref.mean(dim=1, keepdim=True)
    est = est - est.mean(dim=1, keepdim=True)
    scale = (est * ref).sum(dim=1, keepdim=True) / (ref * ref).sum(dim=1, keepdim=True)
    target = scale * ref
    value = 10 * torch.log10(target.square().sum(dim=1) / (est - target).square().sum(dim=1))
    # silent after the mean is removed, as in the numpy path (a constant estimate is silent)
    return torch.where(_silent_rows_tensor(est), SILENT_FLOOR_DB, value).cpu().numpy()


class _Path(NamedTuple):
    """The steps of one path: the numpy reference or torch on a device."""

    as_2d: Callable[[Any, str], Any]  # signal, name -> checked (N, T) float64 array or tensor
    check_pair: Callable[[Any, Any], tuple[Any, Any]]  # references, estimates -> checked pair
    bss_eval_columns: Callable[[Any, Any, np.ndarray], dict[str, np.ndarray]]
    si_sdr_columns: Callable[[Any, Any], np.ndarray]
    concat: Callable[[list[Any]], Any]  # along the source axis


_NUMPY_PATH = _Path(_as_2d_float64, _check_pair, _bss_eval_columns, _si_sdr_columns, np.concatenate)


def _path(backend: Backend, *signals: Any) -> _Path:
    device = scoring_device(backend, *signals)
    if device is None:
        return _NUMPY_PATH
    return _Path(
        functools.partial(_as_2d_tensor, device=device),
        functools.partial(_check_pair_tensor, device=device),
        _bss_eval_columns_tensor,
        _si_sdr_columns_tensor,
        torch.cat,
    )


def bss_eval(references: Any, estimates: Any, *, backend: Backend = "auto") -> dict[str, np.ndarray]:
    """SDR, SIR and SAR (dB) of mir_eval's ``bss_eval_sources``, without permutation.

    Args:
        references: (N, T) true sources of one mixture (Tensor or ndarray, any float dtype).
        estimates: (N, T) estimates; estimate ``n`` is scored against reference ``n``.
        backend: ``"auto"`` computes on the GPU when a signal is a CUDA tensor, else
            with numpy (the reference); ``"torch"`` / ``"numpy"`` force a path (see
            :func:`scoring_device`). Always in float64.

    Returns:
        ``{"sdr", "sir", "sar"}``, each a float64 numpy array of shape (N,), in dB. A
        silent estimate has SDR ``SILENT_FLOOR_DB`` and NaN SIR and SAR (see the
        module docstring).

    Raises:
        ValueError: shapes differ, non-finite samples, T < 512, or a silent reference.
    """
    path = _path(backend, references, estimates)
    ref, est = path.check_pair(references, estimates)
    return path.bss_eval_columns(ref, est, np.arange(ref.shape[0]))


def si_sdr(reference: Any, estimate: Any, *, backend: Backend = "auto") -> np.ndarray:
    """Scale-invariant SDR (Le Roux et al., 2019) in dB, per source.

    Both signals are made zero-mean first (as in the paper's definition).
    ``SI-SDR = 10 log10(|a s|^2 / |a s - e|^2)`` with ``a = <e, s> / |s|^2``.

    Args:
        reference, estimate: (N, T) or (T,).
        backend: where to compute, as in :func:`bss_eval`.

    Returns:
        (N,) float64 numpy array; ``SILENT_FLOOR_DB`` where the estimate is silent.
        Raises ``ValueError`` on a silent reference.
    """
    path = _path(backend, reference, estimate)
    return path.si_sdr_columns(*path.check_pair(reference, estimate))


def _tile_mixture(path: _Path, mixture: Any, n: int, t: int) -> Any:
    mix = path.as_2d(mixture, "mixture")
    if tuple(mix.shape) != (1, t):
        raise ValueError(f"mixture must have shape ({t},) to match the references, got {tuple(mix.shape)}")
    return path.concat([mix] * n)


def _score_estimate_sets(
    path: _Path, references: Any, estimate_sets: Mapping[str, Any], mixture: Any
) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    """bss_eval and SI-SDR of several (N, T) estimate sets and of the mixture, with one solve.

    Returns ``({name: {"sdr", "sir", "sar", "si_sdr"}}, N)`` with the mixture under ``MIXTURE``.
    """
    ref = path.as_2d(references, "references")
    n, t = ref.shape
    mix = _tile_mixture(path, mixture, n, t)
    sets: dict[str, Any] = {}
    for name, est in estimate_sets.items():
        if name == MIXTURE:
            raise ValueError(f"{MIXTURE!r} is reserved for the unprocessed mixture; rename that estimate set")
        sets[name] = path.check_pair(ref, est)[1]
    path.check_pair(ref, mix)  # raises on a silent reference
    stacked = path.concat([*sets.values(), mix])
    targets = np.tile(np.arange(n), len(sets) + 1)
    scores = path.bss_eval_columns(ref, stacked, targets)
    out = {}
    for k, name in enumerate([*sets, MIXTURE]):
        est = mix if name == MIXTURE else sets[name]
        out[name] = {m: v[k * n : (k + 1) * n] for m, v in scores.items()}
        out[name]["si_sdr"] = path.si_sdr_columns(ref, est)
    return out, n


def evaluate_queries(
    references: Any,
    estimates: Any,
    mixture: Any,
    *,
    entities: Sequence[str] | None = None,
    backend: Backend = "auto",
) -> list[dict[str, Any]]:
    """Score every query of one test mixture: one row per source.

    Args:
        references: (N, T) true sources; estimates: (N, T), estimate ``n`` is the
            answer to the query of source ``n``; mixture: (T,) what the model heard.
        entities: optional N query texts, stored in the rows as ``entity``.
        backend: where to compute, as in :func:`bss_eval` (on the GPU when a
            signal is a CUDA tensor).

    Returns:
        N dicts with ``query`` (index n), [``entity``], ``sdr``, ``sir``, ``sar``,
        ``sdri``, ``si_sdr`` (the estimate) and ``input_sdr``, ``input_sir``,
        ``input_sar``, ``input_si_sdr`` (the mixture as the estimate), in dB.
    """
    rows = evaluate_regimes(references, {"estimate": estimates}, mixture, entities=entities, backend=backend)
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
    backend: Backend = "auto",
) -> list[dict[str, Any]]:
    """Score the answers of several models to the queries of one test mixture, with one solve.

    The costly part of bss_eval depends on the references only, so scoring
    every regime (and the mixture baseline) of a test mixture together is
    about as fast as scoring one.

    Args:
        references: (N, T); estimates: regime name -> (N, T) estimates;
        mixture: (T,); entities: optional N query texts.
        include_mixture: add the rows of regime ``"mixture"`` (the mixture as the estimate).
        backend: where to compute, as in :func:`bss_eval`: with ``"auto"``, on the
            GPU when any signal is a CUDA tensor (the others are moved there).

    Returns:
        One dict per regime and query: ``regime``, ``query``, [``entity``],
        ``sdr``, ``sir``, ``sar``, ``sdri``, ``si_sdr`` (dB; ``sdri`` 0 for the mixture).
    """
    path = _path(backend, references, mixture, *estimates.values())
    scores, n = _score_estimate_sets(path, references, estimates, mixture)
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
