"""What the study notebooks call: open the study, train, evaluate, tabulate, draw, listen.

Kept here, not in the notebooks, so that notebooks only orchestrate and
``make figures`` can redraw without them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import atomic_write_text
from ..paths import portable_path
from ..runs import run_label
from ..training.checkpoint import load_separator
from .plots import plot_sdr_by_regime, plot_spectrograms, plot_training_curves
from .study import Study, resolve_data
from .summary import log_minutes

# tqdm.auto falls back to a text bar without ipywidgets, and says so with the path of the
# virtual environment: a machine path in every executed notebook of results/.
warnings.filterwarnings("ignore", message="IProgress not found")


def open_study(
    profile: str | None = None,
    *,
    data: str | Path | None = None,
    clap_checkpoint: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    clap_backend: str | None = None,
    reuse: bool = True,
    **overrides: Any,
) -> Study:
    """The study of a notebook's parameters cell, and one line saying what it runs on.

    With ``reuse`` (the notebooks' default; ``make reproduce`` passes False
    unless ``REUSE=1``), models committed in ``results/models`` whose saved run
    config is the one asked for are used instead of trained, and say so.

    ``data`` is a folder of manifests (``train.csv``, ``val.csv``, ``test.csv``)
    or the root of a dataset in its public layout (MUSIC, VGGSound, AudioCaps),
    whose manifests are then prepared into the cache (missing and unreadable
    files skipped and counted); None trains on the rendered corpora.
    """
    manifests = resolve_data(data)
    study = Study(
        profile,
        manifests=manifests,
        clap_checkpoint=clap_checkpoint,
        tokenizer_dir=tokenizer_dir,
        clap_backend=clap_backend,
        reuse_committed=reuse,
        **overrides,
    )
    p = study.profile
    print(
        f"profile {p.name}: {p.sample_rate} Hz, {p.clip_seconds:.2f} s clips, a budget of {p.steps} steps per run, "
        f"seeds {list(p.seeds)}; data: {study.data_name()}; CLAP: {study.clap_backend}; "
        f"results -> {portable_path(study.results)}"
    )
    return study


def _export_name(label: str, n_sources: int, seed: int, corpus: str) -> str:
    name = f"{label.replace('@', '_at_').replace('%', 'pct')}_n{n_sources}"
    name += "" if corpus == "instruments" else f"_{corpus}"
    return name + ("" if seed == 0 else f"_s{seed}")


def train_and_evaluate(
    study: Study,
    name: str,
    table: str,
    n_sources: int,
    runs: dict[str, dict[str, Any]],
    seeds: Sequence[int] | None = None,
    corpus: str = "instruments",
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Path]]:
    """Train every run of a table for every seed, evaluate it on the saved N-source test mixtures, write the table.

    ``runs`` maps a run label (``"weak"``, ``"sup@5%"``) to its arguments:
    ``regime`` plus overrides such as ``label_fraction`` or ``steps``. Each run
    trains to its plateau within the step budget and is scored at its best
    validation checkpoint. ``seeds`` default to the profile's.
    Writes ``results/<name>.csv`` (summary over seeds and test mixtures),
    ``results/queries/<name>.csv`` (per-query rows, with ``seed``),
    ``results/configs/<name>.json``, the models and logs (``results/models``,
    ``results/runs``) and the figures. Returns the summary, the per-query rows
    and the model paths by label (of the first seed).
    """
    seeds = list(study.profile.seeds if seeds is None else seeds)
    by_seed: dict[int, dict[str, Path]] = {}
    for seed in seeds:
        by_seed[seed] = {}
        for label, args in runs.items():
            args = dict(args)
            regime = args.pop("regime")
            path = by_seed[seed][label] = study.train(regime, n_sources, seed=seed, corpus=corpus, **args)
            study.export_run(path, _export_name(label, n_sources, seed, corpus))
    rows = pd.concat(
        [study.evaluate(paths, n_sources, corpus=corpus).assign(seed=seed) for seed, paths in by_seed.items()],
        ignore_index=True,
    )
    summary = study.write_table(
        name, table, rows, config={"runs": runs, "seeds": seeds, "n_sources": n_sources, "corpus": corpus}
    )
    fig_dir = study.results / "figures"
    plot_sdr_by_regime(summary, fig_dir / f"{name}_sdr.png")
    first = by_seed[seeds[0]]
    plot_training_curves(
        {label: study.run_files(p) / "log.csv" for label, p in first.items()}, fig_dir / f"{name}_training.png"
    )
    return summary, rows, first


def stopping(study: Study, name: str) -> pd.DataFrame:
    """Where every run of the table ``name`` stopped, for every seed: its best validation step and
    SDR, the step it stopped at, whether it plateaued and what its training cost, one row per (run, seed).

    Read from the table's config (``results/configs/<name>.json``: runs, seeds, N, corpus) and the
    ``selection.json`` that :func:`train_and_evaluate` exported for each run into ``results/runs``.
    ``train_minutes`` is the wall time of its training steps and validations (the sum of the
    ``seconds`` column of the run's ``log.csv``; NaN when the run kept no log), on the machine that
    trained it. Runs that kept no validation record are left out.
    """
    config_path = study.results / "configs" / f"{name}.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} does not exist: run train_and_evaluate for table {name!r} first")
    config = json.loads(config_path.read_text())
    rows = []
    for label in config["runs"]:
        for seed in config["seeds"]:
            export = _export_name(label, config["n_sources"], seed, config.get("corpus", "instruments"))
            model = study.results / "models" / f"{export}.pt"
            selection = study.selection(model)
            if selection is not None:
                rows.append(
                    {"run": label, "seed": seed, **selection, "train_minutes": log_minutes(study.run_files(model))}
                )
    return pd.DataFrame(rows).set_index(["run", "seed"]) if rows else pd.DataFrame()


def headline(
    summary: pd.DataFrame, metrics: Sequence[str] = ("sdr", "sdri", "si_sdr", "sir", "sar", "clap_sim")
) -> pd.DataFrame:
    """Mean [95 % cluster-bootstrap interval] per regime (rows) and metric (columns), as strings, for display."""
    df = summary[summary["metric"].isin(metrics)].copy()
    df["run"] = df.apply(lambda r: run_label(r["regime"], r["label_fraction"]), axis=1)
    df["value"] = df.apply(lambda r: f"{r['mean']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]", axis=1)
    return df.pivot_table(index="run", columns="metric", values="value", aggfunc="first")[
        list(m for m in metrics if m in set(df["metric"]))
    ]


def listen(
    study: Study,
    paths: dict[str, Path],
    n_sources: int,
    items: Sequence[int] = (0,),
    max_seconds: float = 4.0,
    name: str = "example",
    corpus: str = "instruments",
) -> list[Path]:
    """For a few test mixtures: spectrograms of mixture, references and each model's estimates,
    and (in a notebook) audio players. Returns the figure paths."""
    testset = study.testset(n_sources, corpus=corpus)
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


def recorded_clap_table(study: Study, instrument_study: Study) -> pd.DataFrame:
    """How well ``study``'s CLAP (pretrained on its data's own ``clap`` split) and the instrument
    study's CLAP know the data's test clips: zero-shot accuracy (chance beside it) and the mAP
    of the present classes on the 2-source test mixtures. Writes ``study``'s CLAP card and
    commits its CLAP beside the models (``Study.clap_card``)."""
    from ..clap.pretrain import evaluate_clap_on

    test, mixtures, sr = study.clips("test"), study.testset(2), study.profile.sample_rate
    study.clap_card()
    rows = []
    for name, s in (("the data's own clap split", study), ("rendered instruments and events", instrument_study)):
        card = evaluate_clap_on(s.clap(), test, mixtures, sr)
        rows.append(
            {
                "CLAP pretrained on": name,
                "zero-shot accuracy": round(card["zero_shot_accuracy"], 3),
                "chance": round(1 / len(test.classes), 3),
                "test clips": card["zero_shot_n_clips"],
                "classes": card["zero_shot_n_classes"],
                "mixture mAP": round(card["mixture_map"], 3),
                "test mixtures": card["mixture_map_n_mixtures"],
            }
        )
    return pd.DataFrame(rows)


def choose_default_separator(study: Study, pattern: str = "*_n2_recorded*.pt") -> dict[str, Any]:
    """Name the model ``weaksep separate`` uses by default: of the models in ``results/models``
    matching ``pattern`` (the recorded-events models at N = 2, every regime and seed), the one with
    the best validation SDR (validation mixtures differ with N, so N is fixed). Writes
    ``results/models/default_separator.json`` (the model, its validation SDR and every candidate's)."""
    from ..inference.waveform import DEFAULT_CHOICE

    candidates = {}
    for model in sorted((study.results / "models").glob(pattern)):
        selection = study.selection(model)
        if selection is not None and selection.get("best_val_sdr") is not None:
            candidates[model.name] = round(float(selection["best_val_sdr"]), 3)
    if not candidates:
        raise FileNotFoundError(f"no model matching {pattern} with a validation record in {study.results / 'models'}")
    best = max(candidates, key=candidates.__getitem__)
    choice = {
        "model": best,
        "best_val_sdr": candidates[best],
        "rule": f"best validation SDR (dB) among {pattern}",
        "candidates": candidates,
    }
    atomic_write_text(study.results / "models" / DEFAULT_CHOICE.name, json.dumps(choice, indent=2) + "\n")
    return choice


def separation_example(
    study: Study, model: str | Path, item: int = 0, out_dir: str | Path | None = None
) -> pd.DataFrame:
    """Separate test mixture ``item`` (N = 2) as ``weaksep separate`` separates a user's file, and score it.

    The mixture (a sum of two recordings of the test split) is written to
    ``results/<profile>/recorded/example_mixture.wav`` (16-bit, the profile's rate) with
    ``example_mixture.json`` (its classes, recordings, packages and licences); it is then
    separated by :func:`weaksep.inference.separate.separate_files` with ``model`` and each class
    name as a prompt, into ``out_dir`` (default: ``<cache>/example_separated``). One row per
    prompt: SDR, SDRi and SI-SDR (dB) of the written estimate against its recording, and the
    reference-free CLAP scores ``scores.csv`` gives a user.
    """
    import soundfile as sf

    from ..evaluation.scores import bss_eval, si_sdr
    from ..inference.separate import separate_files

    test, clips, sr = study.testset(2), study.clips("test"), study.profile.sample_rate
    mix, refs, labels = test.mixtures[item].numpy(), test.sources[item].numpy(), list(test.labels[item])
    folder = study.results / "recorded"
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / "example_mixture.wav"
    sf.write(wav, mix, sr, subtype="PCM_16")
    licences = {}
    if study.manifests is not None and (study.manifests / "sources.csv").is_file():
        licences = pd.read_csv(study.manifests / "sources.csv").set_index("package")["licence"].to_dict()
    recordings = []
    for label, k, gain in zip(labels, test.clip_indices[item], test.gains_db[item]):
        source, root = Path(clips.sources[int(k)]).resolve(), Path(study.manifests or ".").resolve()
        rel = source.relative_to(root) if source.is_relative_to(root) else Path(source.name)
        package = Path(rel).parts[1] if len(Path(rel).parts) > 1 else ""
        recordings.append(
            {
                "class": label,
                "recording": str(rel),
                "package": package,
                "licence": licences.get(package, ""),
                "gain_db": round(float(gain), 2),
            }  # fmt: skip
        )
    atomic_write_text(
        wav.with_suffix(".json"), json.dumps({"item": item, "sample_rate": sr, "sources": recordings}, indent=2) + "\n"
    )
    out = Path(out_dir or study.cache / "example_separated")
    notes: list[str] = []  # its notes name this machine's files: kept out of the executed notebook
    scores = separate_files([wav], labels, out, model, log=notes.append)
    pcm = sf.read(wav, dtype="float32")[0]  # what separate_files read: the 16-bit file
    rows = []
    for j, row in scores.reset_index(drop=True).iterrows():
        est = sf.read(row["output"], dtype="float32")[0][: len(pcm)]
        ref = refs[j][: len(est)]
        sdr = float(bss_eval(ref[None], est[None])["sdr"][0])
        sdr_mix = float(bss_eval(ref[None], pcm[None, : len(est)])["sdr"][0])
        rows.append(
            {
                "prompt": row["prompt"],
                "SDR": round(sdr, 2),
                "SDRi": round(sdr - sdr_mix, 2),
                "SI-SDR": round(float(si_sdr(ref[None], est[None])[0]), 2),
                "estimate_score": round(float(row["estimate_score"]), 3),
                "mixture_score": round(float(row["mixture_score"]), 3),
                "absent_warning": row["absent_warning"],
            }
        )
    return pd.DataFrame(rows)
