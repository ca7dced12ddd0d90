"""Evaluate separators on a fixed set of N-source test mixtures.

Every source of every mixture is queried with its own entity; each query is
one row (run, item, entity, SDR/SIR/SAR of bss_eval_sources as mir_eval
defines them, SDRi, SI-SDR, the CLAP similarity of the estimate to its
prompt and whether the CLAP classifies the estimate as its entity). The
unprocessed mixture is scored too, as run ``mixture``, and so are the clean
sources, as run ``clean``, for their CLAP columns only (their bss_eval is
perfect by definition and left empty). Estimates stay on the models' device and
are scored there (bss_eval and SI-SDR on the GPU where the models are on one,
with the numpy reference on the CPU; see :mod:`weaksep.evaluation.scores`).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch

from ..clap import ClapBackend
from ..data import Mixture
from ..method.model import Separator
from .scores import clap_scores, evaluate_regimes


@torch.no_grad()
def separate_testset(model: Separator, clap: ClapBackend, testset: Mixture, batch_size: int = 16) -> torch.Tensor:
    """Estimates (K, N, T) for every source of every test mixture, each queried by its entity.

    On the model's device, so that a GPU also scores them (K N T float32 there:
    about 1 GB for 500 mixtures of N = 4 and 131070 samples).
    """
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for i in range(0, len(testset.labels), batch_size):
        labels = testset.labels[i : i + batch_size]
        mix = testset.mixtures[i : i + batch_size].to(device)
        flat = [e for ls in labels for e in ls]
        text = clap.embed_text(flat).reshape(len(labels), -1, clap.embed_dim).to(device)
        states = mask = None
        if model.cfg.conditioning == "cross_attention":
            states, mask = clap.text_states(flat)
            states = states.reshape(len(labels), -1, *states.shape[1:]).to(device)
            mask = mask.reshape(len(labels), -1, mask.shape[-1]).to(device)
        outs.append(model.separate(mix, text, states, mask))
    return torch.cat(outs)


def evaluate_separators(
    models: Mapping[str, Separator],
    clap: ClapBackend,
    testset: Mixture,
    sample_rate: int,
    batch_size: int = 16,
    with_clean: bool = False,
) -> pd.DataFrame:
    """One row per run and query; runs are the keys of ``models`` plus ``"mixture"``.

    Columns: run, item, query, entity, sdr, sir, sar, sdri, si_sdr (dB),
    clap_sim (cosine) and clap_top1 (1.0 when the CLAP's best class among the
    test set's entities is the query's). bss_eval's cost is mostly per
    reference set, so all runs of one mixture are scored together. With
    ``with_clean``, the clean sources add rows of run ``clean`` (CLAP columns only).
    """
    estimates = {name: separate_testset(m, clap, testset, batch_size) for name, m in models.items()}
    classes = sorted({e for labels in testset.labels for e in labels})
    rows = []
    for k, labels in enumerate(testset.labels):
        per_run = {name: est[k] for name, est in estimates.items()}
        # On the estimates' device: evaluate_regimes moves the references and the
        # mixture to a GPU estimate's device and scores there; all-CPU takes numpy.
        scored = evaluate_regimes(testset.sources[k], per_run, testset.mixtures[k], entities=labels)
        per_run["mixture"] = testset.mixtures[k : k + 1].expand(len(labels), -1)
        if with_clean:
            per_run["clean"] = testset.sources[k]
        scores = {name: clap_scores(clap, est, labels, classes, sample_rate) for name, est in per_run.items()}
        if with_clean:
            scored += [{"regime": "clean", "query": q, "entity": e} for q, e in enumerate(labels)]
        for r in scored:
            r["run"] = r.pop("regime")
            sim, top1 = scores[r["run"]]
            r.update(item=k, clap_sim=float(sim[r["query"]]), clap_top1=float(top1[r["query"]]))
            rows.append(r)
    return pd.DataFrame(rows)
