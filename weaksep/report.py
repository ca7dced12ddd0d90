"""What the study notebooks call: train, evaluate, tabulate, draw, listen.

Kept here, not in the notebooks, so that notebooks only orchestrate and
``make figures`` can redraw without them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from .checkpoint import load_separator
from .plots import plot_sdr_by_regime, plot_spectrograms, plot_training_curves
from .study import Study


def train_and_evaluate(study: Study, name: str, table: str, n_sources: int, runs: dict[str, dict[str, Any]],
                       seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Path]]:
    """Train every run of a table, evaluate it on the saved N-source test mixtures, write the table.

    ``runs`` maps a run label (``"weak"``, ``"sup@5%"``) to its arguments:
    ``regime`` plus overrides such as ``label_fraction``, ``steps`` or
    ``train_sources`` (N of its training mixtures, when it differs from the
    test N, e.g. a supervised model shared across N).
    Writes ``results/<name>.csv`` (summary), ``results/queries/<name>.csv``
    (per-query rows), ``results/configs/<name>.json``, the models and logs
    (``results/models``, ``results/runs``) and the figures. Returns the
    summary, the per-query rows and the model paths by label.
    """
    paths: dict[str, Path] = {}
    for label, args in runs.items():
        args = dict(args)
        regime = args.pop("regime")
        train_n = args.pop("train_sources", n_sources)
        paths[label] = study.train(regime, train_n, seed=seed, **args)
        study.export_run(paths[label], f"{label.replace('@', '_at_').replace('%', 'pct')}_n{train_n}")
    rows = study.evaluate(paths, n_sources)
    summary = study.write_table(name, table, rows, config={"runs": runs, "seed": seed, "n_sources": n_sources})
    fig_dir = study.results / "figures"
    plot_sdr_by_regime(summary, fig_dir / f"{name}_sdr.png")
    logs = {label: p.parent / "log.csv" for label, p in paths.items()}
    plot_training_curves(logs, fig_dir / f"{name}_training.png")
    return summary, rows, paths


def headline(summary: pd.DataFrame, metrics: Sequence[str] = ("sdr", "sdri", "si_sdr", "sir", "sar", "clap_sim")) -> pd.DataFrame:
    """Mean ± 95 % CI per regime (rows) and metric (columns), as strings, for display."""
    df = summary[summary["metric"].isin(metrics)].copy()
    lab = df.apply(lambda r: r["regime"] if r["regime"] in ("mixture", "unsup", "weak") or r["label_fraction"] >= 1
                   else f"{r['regime']}@{r['label_fraction'] * 100:g}%", axis=1)
    df["run"] = lab
    df["value"] = df.apply(lambda r: f"{r['mean']:.2f} ± {r['ci95']:.2f}", axis=1)
    return df.pivot_table(index="run", columns="metric", values="value", aggfunc="first")[list(m for m in metrics if m in set(df["metric"]))]


def listen(study: Study, paths: dict[str, Path], n_sources: int, items: Sequence[int] = (0,),
           max_seconds: float = 4.0, name: str = "example") -> list[Path]:
    """For a few test mixtures: spectrograms of mixture, references and each model's estimates,
    and (in a notebook) audio players. Returns the figure paths."""
    testset = study.testset(n_sources)
    clap = study.clap()
    sr = study.profile.sample_rate
    models = {label: load_separator(p)[0] for label, p in paths.items()}
    figs = []
    try:
        from IPython.display import Markdown, display

        from .listening import compact_image, players
    except ImportError:  # outside a notebook: figures only
        display = None
    for k in items:
        labels = testset.labels[k]
        mix = testset.mixtures[k : k + 1]
        text = clap.embed_text(labels).unsqueeze(0)
        estimates, refs = {}, {}
        for label, model in models.items():
            est = model.separate(mix, text)[0]
            for j, entity in enumerate(labels):
                estimates[f"{label}: {entity}"] = est[j]
        for j, entity in enumerate(labels):
            refs[entity] = testset.sources[k, j]
        # Estimates model by model, entities in reference order (the figure's layout).
        out = study.results / "figures" / f"{name}_item{k}.png"
        figs.append(plot_spectrograms(mix[0], estimates, refs, sr, study.profile.n_fft, study.profile.hop, out))
        if display is not None:
            # MP3 players and a 64-colour copy of the figure keep the executed notebook small.
            display(Markdown(f"**Test mixture {k}**: {' + '.join(labels)}"), compact_image(out))
            display(players({"mixture": mix[0], **{f"true {e}": v for e, v in refs.items()}}, sr, max_seconds))
            display(players(estimates, sr, max_seconds))
    return figs
