"""The study's figures, drawn from the result CSVs (never from a model).

One purpose: every figure of the study, so that they share one style and
``make figures`` can redraw them all.

Figures are built on :class:`matplotlib.figure.Figure` directly, not through
pyplot: nothing is displayed, no global backend is switched (a notebook's
inline backend keeps working), and saving uses Agg.

``weaksep figures results/`` (and ``make figures``) redraws every
figure that the CSVs in ``results/`` allow into ``results/figures/`` and
writes ``results/summary.md`` / ``results/summary.csv``, without training.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from weaksep.io import atomic_write_bytes, atomic_write_text
from weaksep.reproduce.summary import compare_to_paper, load_tables, summary_markdown
from weaksep.reproduce.tables import REGIME_ORDER, load_table

METRIC_LABELS = {
    "sdr": "SDR (dB, bss_eval)",
    "sir": "SIR (dB, bss_eval)",
    "sar": "SAR (dB, bss_eval)",
    "sdri": "SDR improvement (dB)",
    "si_sdr": "SI-SDR (dB)",
    "clap_sim": "CLAP similarity",
    "clap_top1": "share of queries the CLAP names correctly",
}


def _save(fig: Figure, out_png: str | Path) -> Path:
    FigureCanvasAgg(fig)  # attach an Agg canvas: no display, no pyplot state
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(out_png, buf.getvalue())


def regime_label(regime: str, label_fraction: float) -> str:
    """``sup`` / ``semi`` trained on a labelled fraction < 1 become ``sup@5%``."""
    if regime in ("sup", "semi") and pd.notna(label_fraction) and float(label_fraction) < 1:
        return f"{regime}@{float(label_fraction) * 100:g}%"
    return regime


def _regime_colours(label_regimes: Any) -> dict[str, Any]:
    """One colour per regime in every figure; a labelled-fraction variant (sup@5%) is a lighter shade."""
    cb = sns.color_palette("colorblind", 10)
    base = {"mixture": (0.55, 0.55, 0.55), "unsup": cb[1], "weak": cb[2], "sup": cb[0], "semi": cb[4]}
    spare = iter(cb[5:])
    colours: dict[str, Any] = {}
    for label, regime in label_regimes:
        if regime not in base:
            base[regime] = next(spare, (0.3, 0.3, 0.3))
        c = np.asarray(base[regime])
        colours[label] = tuple(c if label == regime else 0.55 * c + 0.45)  # blend towards white
    return colours


def _read_tables(table_csvs: Any) -> pd.DataFrame:
    if isinstance(table_csvs, pd.DataFrame):
        return table_csvs
    if isinstance(table_csvs, (str, Path)):
        table_csvs = [table_csvs]
    frames = [load_table(p) for p in table_csvs]
    if not frames:
        raise ValueError("no result table given to plot")
    return pd.concat(frames, ignore_index=True)


def _seeds_note(rows: pd.DataFrame) -> str:
    """A second tick line, "3 seeds", under an N whose bars all rest on that many seeds ("1-3 seeds"
    when they differ: a study under way mixes one-seed and three-seed tables); empty without ``n_seeds``."""
    if "n_seeds" not in rows.columns or rows["n_seeds"].isna().all():
        return ""
    low, high = int(rows["n_seeds"].min()), int(rows["n_seeds"].max())
    count = str(low) if low == high else f"{low}-{high}"
    return f"\n{count} seed{'s' if high > 1 else ''}"


def plot_sdr_by_regime(table_csvs: Any, out_png: str | Path, metric: str = "sdr") -> Path:
    """Bars of the mean ``metric`` with 95 % CI error bars, by N (x) and regime (colour).

    Args:
        table_csvs: result table CSV path(s) (columns of ``tables.TABLE_COLUMNS``)
            or an already concatenated DataFrame.
        out_png: where to write the PNG.
        metric: one of ``sdr, sir, sar, sdri, si_sdr, clap_sim``.
    """
    df = _read_tables(table_csvs)
    df = df[(df["metric"] == metric) & np.isfinite(df["mean"].astype(float))].copy()
    if df.empty:
        raise ValueError(f"the result tables hold no finite {metric!r} rows to plot")
    df["label"] = [regime_label(r, lf) for r, lf in zip(df["regime"], df["label_fraction"])]
    rank = {r: i for i, r in enumerate(REGIME_ORDER)}
    order = (
        df.assign(_r=df["regime"].map(lambda r: rank.get(r, len(rank))), _lf=df["label_fraction"].fillna(1.0))
        .sort_values(["_r", "_lf"])["label"]
        .drop_duplicates()
        .tolist()
    )
    ns = sorted(df["n_sources"].unique())
    colours = _regime_colours(df[["label", "regime"]].drop_duplicates().itertuples(index=False))
    width = 0.8 / len(order)
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(1.6 + 0.9 * len(ns) * max(1, len(order) / 2.5), 3.6))
        ax = fig.add_subplot()
        for j, label in enumerate(order):
            sub = df[df["label"] == label].groupby("n_sources").first().reindex(ns)
            x = np.arange(len(ns)) + (j - (len(order) - 1) / 2) * width
            ax.bar(x, sub["mean"], width, yerr=_yerr(sub), capsize=3, label=label, color=colours[label])
        ax.set_xticks(np.arange(len(ns)), [f"N = {n}{_seeds_note(df[df['n_sources'] == n])}" for n in ns])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel(f"mean {METRIC_LABELS.get(metric, metric)}")
        profiles = ", ".join(sorted(set(df["profile"].astype(str))))
        ax.set_title(f"{metric} by regime (mean, {INTERVAL}; profile {profiles})", fontsize=9)
        ax.legend(title="regime", fontsize=8, title_fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, out_png)


# --------------------------------------------------------------------------- ablations
ABLATION_PLOTS = {  # section -> (kind, x label, log x)
    "loss": ("bars", None, False),
    "text": ("bars", None, False),
    "weight": ("lines", "contrastive weight (reconstruction terms: 5)", False),
    "clap": ("lines", "CLAP zero-shot accuracy on clean test clips", False),
    "fraction": ("lines", "labelled fraction of the training clips", True),
    "length": ("lines", "training step", False),
}


INTERVAL = "95 % bootstrap interval over seeds and test mixtures"


def _yerr(df: pd.DataFrame) -> np.ndarray:
    """(2, n) error-bar lengths below and above ``mean`` from ``ci_low``/``ci_high`` (0 where unknown)."""
    mean = df["mean"].to_numpy(np.float64)
    below = mean - df["ci_low"].to_numpy(np.float64)
    above = df["ci_high"].to_numpy(np.float64) - mean
    return np.nan_to_num(np.clip(np.stack([below, above]), 0.0, None))


def _metric_rows(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    df = table[(table["metric"] == metric) & np.isfinite(table["mean"].astype(float))].copy()
    if df.empty:
        raise ValueError(f"the ablation table holds no finite {metric!r} rows to plot")
    return df


def plot_ablation_bars(table: pd.DataFrame, out_png: str | Path, metric: str = "sdr") -> Path:
    """Mean ``metric`` and its 95 % bootstrap interval for every setting (bars), one panel per N."""
    df = _metric_rows(table, metric)
    ns = sorted(df["n_sources"].unique())
    order = list(dict.fromkeys(df["setting"]))
    colours = dict(zip(order, sns.color_palette("colorblind", len(order))))
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(0.9 + 0.75 * len(order) * len(ns), 3.8))
        axes = fig.subplots(1, len(ns), squeeze=False)[0]
        for ax, n in zip(axes, ns):
            sub = df[df["n_sources"] == n].set_index("setting")  # the table lists settings in run order
            ax.bar(range(len(sub)), sub["mean"], yerr=_yerr(sub), capsize=3, color=[colours[o] for o in sub.index])
            ax.set_xticks(range(len(sub)), sub.index, rotation=35, ha="right", fontsize=8)
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_title(f"N = {n}", fontsize=9)
        axes[0].set_ylabel(f"mean {METRIC_LABELS.get(metric, metric)}")
        fig.suptitle(
            f"{table['table'].iloc[0]}: {metric}, mean, {INTERVAL} (profile "
            f"{', '.join(sorted(set(df['profile'].astype(str))))})",
            fontsize=9,
        )
    return _save(fig, out_png)


def plot_ablation_lines(
    table: pd.DataFrame,
    out_png: str | Path,
    x_label: str,
    log_x: bool = False,
    metric: str = "sdr",
    paired: bool = False,
) -> Path:
    """Mean ``metric`` and its 95 % bootstrap interval against each setting's ``value``, one line per regime and N.

    Settings without a value (a baseline such as ``unsup``) are drawn as dashed
    horizontal lines. With ``paired``, the y axis is the paired difference to
    each setting's reference (``paired_diff`` in ``[paired_ci_low, paired_ci_high]``) instead, with 0
    (no gain) drawn black.
    """
    df = _metric_rows(table, metric)
    df = df[df["regime"] != "mixture"]
    if paired:
        df = df[(df["paired_vs"] != "") & df["paired_diff"].notna()]
        df = df.assign(mean=df["paired_diff"], ci_low=df["paired_ci_low"], ci_high=df["paired_ci_high"])
        refs = " / ".join(dict.fromkeys(df["paired_vs"].astype(str)))
        if len(refs) > 40:
            refs = "its reference at the same setting"
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(6.4, 3.8))
        ax = fig.add_subplot()
        palette = iter(sns.color_palette("colorblind", 10))
        for (n, regime), sub in df[df["value"].notna()].groupby(["n_sources", "regime"]):
            sub = sub.sort_values("value")
            ax.errorbar(
                sub["value"],
                sub["mean"],
                yerr=_yerr(sub),
                marker="o",
                capsize=3,
                label=f"{regime}, N = {n}",
                color=next(palette),
            )
        for _, row in df[df["value"].isna()].iterrows():
            c = next(palette)
            ax.axhline(row["mean"], linestyle="--", color=c, label=f"{row['setting']}, N = {row['n_sources']}")
            if np.isfinite([row["ci_low"], row["ci_high"]]).all():
                ax.axhspan(row["ci_low"], row["ci_high"], color=c, alpha=0.12)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(x_label)
        if paired:
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_ylabel(f"paired {metric} difference (dB) vs {refs}", fontsize=8)
        else:
            ax.set_ylabel(f"mean {METRIC_LABELS.get(metric, metric)}")
        what = "paired difference" if paired else "mean"
        ax.set_title(f"{table['table'].iloc[0]}: {what}, {INTERVAL}", fontsize=8)
        ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, out_png)


def plot_ablation(table: pd.DataFrame | str | Path, figures_dir: str | Path) -> list[Path]:
    """The figure(s) of one ablation table: ``figures/07_ablations_<section>.png``; for a section
    with numeric settings, the paired gain against them (``..._paired.png``, e.g. SDR gain
    against CLAP accuracy); where the table has CLAP recognition rates, ``..._clap_top1.png``."""
    from weaksep.reproduce.ablations import load_ablation

    df = table if isinstance(table, pd.DataFrame) else load_ablation(table)
    section = str(df["section"].iloc[0])
    kind, x_label, log_x = ABLATION_PLOTS.get(section, ("bars", None, False))
    figures_dir = Path(figures_dir)
    name = f"07_ablations_{section}"
    out = [
        plot_ablation_bars(df, figures_dir / f"{name}.png")
        if kind == "bars"
        else plot_ablation_lines(df, figures_dir / f"{name}.png", x_label or "value", log_x)
    ]
    if kind == "lines" and ((df["paired_vs"] != "") & df["value"].notna() & (df["metric"] == "sdr")).any():
        out.append(plot_ablation_lines(df, figures_dir / f"{name}_paired.png", x_label or "value", log_x, paired=True))
    if (df["metric"] == "clap_top1").any():
        out.append(plot_ablation_bars(df, figures_dir / f"{name}_clap_top1.png", metric="clap_top1"))
    return out


def _read_log(name: str, path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log {path} (run {name!r}) does not exist")
    df = pd.read_csv(path)
    if "step" not in df.columns:
        raise ValueError(f"training log {path} has no 'step' column; it has {list(df.columns)}")
    return df


def plot_training_curves(log_csvs: Mapping[str, str | Path], out_png: str | Path) -> Path:
    """Every loss term (columns ``loss*`` of the training logs) against the step, one panel per term.

    Args:
        log_csvs: run name -> training log CSV (columns ``step``, ``loss_*``, ``lr``, ...).
            A run lacking a term simply has no line in that panel.
        out_png: where to write the PNG.
    """
    logs = {name: _read_log(name, p) for name, p in log_csvs.items()}
    terms = sorted(
        {c for df in logs.values() for c in df.columns if c.startswith("loss")}, key=lambda c: (c != "loss_total", c)
    )
    if not terms:
        raise ValueError(f"no loss column (loss*) in the training logs {list(map(str, log_csvs.values()))}")
    ncols = min(3, len(terms))
    nrows = -(-len(terms) // ncols)
    colours = dict(zip(logs, sns.color_palette("tab10" if len(logs) <= 10 else "husl", len(logs))))
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(4.2 * ncols + 1.8, 3.0 * nrows))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, term in zip(axes.flat, terms):
            for name, df in logs.items():
                if term not in df.columns:
                    continue
                d = df[["step", term]].dropna()
                if d.empty:
                    continue
                # The raw per-step loss is noisy: draw it faintly with a rolling mean on top.
                window = max(1, len(d) // 40)
                ax.plot(d["step"], d[term], color=colours[name], alpha=0.25, linewidth=0.8)
                ax.plot(d["step"], d[term].rolling(window, min_periods=1).mean(), color=colours[name], label=name)
            values = np.concatenate([df[term].dropna().to_numpy(float) for df in logs.values() if term in df])
            if values.size and values.min() > 0 and values.max() / values.min() > 30:
                ax.set_yscale("log")
            ax.set_title(term, fontsize=9)
            ax.set_xlabel("step")
        for ax in list(axes.flat)[len(terms) :]:
            ax.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        for ax in axes.flat:  # the first panel may lack some runs
            h, lab = ax.get_legend_handles_labels()
            if len(lab) > len(labels):
                handles, labels = h, lab
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, title="run")
        fig.tight_layout()
    return _save(fig, out_png)


def _as_1d(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64).squeeze()
    if x.ndim != 1:
        raise ValueError(f"{name} must be a mono waveform (T,), got shape {x.shape}")
    return x


def _spectrogram_db(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    spec = (
        torch.stft(
            torch.from_numpy(x), n_fft, hop, window=torch.hann_window(n_fft, dtype=torch.float64), return_complex=True
        )
        .abs()
        .numpy()
    )
    return 20 * np.log10(np.maximum(spec, 1e-8))


def plot_spectrograms(
    mixture: Any,
    estimates: Mapping[str, Any],
    references: Mapping[str, Any] | None,
    sample_rate: int,
    n_fft: int,
    hop: int,
    out_png: str | Path,
) -> Path:
    """Magnitude spectrograms (dB) of one test mixture, its references and estimates.

    Layout: the mixture on the top row; the references (if given) on the second
    row, one column each; the estimates below, filling rows of as many columns
    as there are references (so order estimates model by model, entities in
    the order of ``references``, to line each up under its reference).
    All panels share one colour scale (80 dB below the mixture's peak).

    Args:
        mixture: (T,) waveform; estimates / references: name -> (T,) waveform.
        sample_rate: Hz; n_fft, hop: STFT size and hop in samples.
    """
    if not estimates:
        raise ValueError("plot_spectrograms needs at least one estimate")
    mix = _as_1d(mixture, "mixture")
    refs = {k: _as_1d(v, f"reference {k!r}") for k, v in (references or {}).items()}
    ests = {k: _as_1d(v, f"estimate {k!r}") for k, v in estimates.items()}
    ncols = len(refs) if refs else min(4, len(ests))
    est_rows = -(-len(ests) // ncols)
    nrows = 1 + (1 if refs else 0) + est_rows
    mix_db = _spectrogram_db(mix, n_fft, hop)
    vmax = float(mix_db.max())
    extent = (0, mix.size / sample_rate, 0, sample_rate / 2000)

    fig = Figure(figsize=(3.2 * ncols + 1.0, 2.2 * nrows), layout="constrained")
    grid = fig.add_gridspec(nrows, ncols)

    def panel(ax: Any, x: np.ndarray, title: str) -> Any:
        im = ax.imshow(
            _spectrogram_db(x, n_fft, hop),
            origin="lower",
            aspect="auto",
            extent=extent,
            vmin=vmax - 80,
            vmax=vmax,
            cmap="magma",
            interpolation="nearest",
        )
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("time (s)", fontsize=7)
        ax.set_ylabel("kHz", fontsize=7)
        ax.tick_params(labelsize=6)
        return im

    im = panel(fig.add_subplot(grid[0, :]), mix, "mixture")
    for j, (name, x) in enumerate(refs.items()):
        panel(fig.add_subplot(grid[1, j]), x, f"reference: {name}")
    first = 1 + (1 if refs else 0)
    for i, (name, x) in enumerate(ests.items()):
        panel(fig.add_subplot(grid[first + i // ncols, i % ncols]), x, name)
    fig.colorbar(im, ax=fig.axes, shrink=0.6, label="dB")
    return _save(fig, out_png)


def redraw_all(results_dir: str | Path) -> dict[str, Any]:
    """Redraw every figure the CSVs in ``results_dir`` allow, and write the summary.

    Reads the result tables (:data:`weaksep.reproduce.summary.TABLE_FILES`) and the
    training logs ``runs/<run>/log.csv``; writes into ``results_dir``:
    ``figures/sdr_by_regime.png``, ``figures/si_sdr_by_regime.png`` (N-source
    tables), ``figures/semi_supervised_sdr.png``, ``figures/training_curves.png``,
    ``summary.md`` and ``summary.csv`` (the comparison with the paper). Figures
    whose inputs are missing are skipped (spectrograms need audio: the
    notebooks draw them).

    Returns:
        ``{"figures": [paths], "summary_md": path, "summary_csv": path, "claims": DataFrame}``.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist")
    figures_dir = results_dir / "figures"
    tables = load_tables(results_dir)
    written: list[Path] = []

    n_tables = [tables[t] for t in ("two_source", "three_source", "four_source") if t in tables]
    if n_tables:
        combined = pd.concat(n_tables, ignore_index=True)
        for metric in ("sdr", "si_sdr"):
            if (combined["metric"] == metric).any():
                written.append(plot_sdr_by_regime(combined, figures_dir / f"{metric}_by_regime.png", metric))
    if "semi_supervised" in tables:
        written.append(plot_sdr_by_regime(tables["semi_supervised"], figures_dir / "semi_supervised_sdr.png"))

    logs = {p.parent.name: p for p in sorted(results_dir.glob("runs/*/log.csv"))}
    if logs:
        try:
            written.append(plot_training_curves(logs, figures_dir / "training_curves.png"))
        except ValueError as e:  # a log without loss columns must not stop the summary
            warnings.warn(f"training curves not drawn: {e}", stacklevel=2)

    ablations = sorted(results_dir.glob("07_ablations_*.csv"))
    for csv in ablations:
        written += plot_ablation(csv, figures_dir)

    claims = compare_to_paper(results_dir)
    summary_md = atomic_write_text(results_dir / "summary.md", summary_markdown(results_dir, ablations))
    summary_csv = atomic_write_text(results_dir / "summary.csv", claims.to_csv(index=False))
    return {"figures": written, "summary_md": summary_md, "summary_csv": summary_csv, "claims": claims}
