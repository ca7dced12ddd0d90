"""The ablation sections of notebook 07, each a function of a :class:`~weaksep.reproduce.study.Study` and an
:class:`~weaksep.profiles.AblationPlan`.

Each function trains the runs of its section (or reuses them: runs are cached by
config hash, so those of notebooks 01-04 are not trained again), scores them on
the same saved mixtures, writes ``results/07_ablations_<section>.csv`` with
:meth:`Study.write_ablation` and returns a :class:`SectionResult`. The settings'
names, the choice on validation and the coverage checks are the pure functions
of :mod:`weaksep.reproduce.ablations`. Every table's config holds the plan and the
``values`` of its settings, so the table can be recomputed from the saved rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..paths import portable_path
from ..profiles import AblationPlan
from .ablations import (
    by_run,
    choose_on_validation,
    clap_variant_rows,
    clap_variant_steps,
    plan_fractions,
    snapshot_settings,
    weight_setting,
    weight_test_sources,
)

if TYPE_CHECKING:
    from .study import Study


# The sections of notebook 07, in its order. weight_test runs with weight (it tests weight's
# choice) and lr_test with lr.
SECTIONS = ("loss", "weight", "clap", "text", "fraction", "length", "design", "lr", "unheard", "group")


def check_sections(sections: Sequence[str] | str | None) -> tuple[str, ...]:
    """The sections a run of notebook 07 makes: every one for None, else ``sections`` in notebook
    order (a comma-separated string, as ``make ablations SECTIONS=design,lr`` passes, or a list)."""
    if sections is None:
        return SECTIONS
    asked = [s.strip() for s in sections.split(",")] if isinstance(sections, str) else list(sections)
    unknown = sorted(set(asked) - set(SECTIONS))
    if unknown or not asked:
        raise ValueError(f"unknown ablation section(s) {unknown or asked}; the sections are {', '.join(SECTIONS)}")
    return tuple(s for s in SECTIONS if s in asked)


@dataclass
class SectionResult:
    """What a section wrote: its table (None when the section was skipped), its per-query rows,
    notes for the reader (skips, choices) and any number a later section needs (``chosen``)."""

    section: str
    table: pd.DataFrame | None
    rows: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    chosen: dict[str, Any] = field(default_factory=dict)


def _write(
    study: Study,
    section: str,
    rows: pd.DataFrame,
    plan: AblationPlan,
    config: dict[str, Any],
    reference: str | dict[str, str],
    values: dict[str, float] | None = None,
) -> pd.DataFrame:
    config = {**config, "values": dict(values or {}), "plan": plan.to_dict()}
    return study.write_ablation(section, rows, reference=reference, values=values, config=config)


def train_weak(study: Study, n_sources: int, seed: int, weight: float) -> Path:
    """The weak run at contrastive ``weight`` (0: the contrastive term switched off, i.e. unsup + consistency)."""
    if weight == 0:
        return study.train("weak", n_sources, seed, contrastive=False)
    return study.train("weak", n_sources, seed, contrastive_weight=weight)


def loss_section(study: Study, plan: AblationPlan) -> SectionResult:
    """Loss terms: unsup alone, + consistency, + contrastive, + both (weak), and sup (trained at N = 2),
    at each N of ``plan.loss_sources``, against ``unsup``; the clean sources' CLAP recognition beside."""
    seed, parts = plan.seed, []
    for n in plan.loss_sources:
        runs = {
            "unsup": study.train("unsup", n, seed),
            "unsup + consistency": study.train("weak", n, seed, contrastive=False),
            "unsup + contrastive": study.train("weak", n, seed, consistency=False),
            "unsup + both (weak)": study.train("weak", n, seed),
            "sup": study.train("sup", 2, seed),
        }
        parts.append(study.evaluate(runs, n, "test", with_clean=True))
    rows = by_run(pd.concat(parts, ignore_index=True))
    table = _write(
        study,
        "loss",
        rows,
        plan,
        {"seed": seed, "sources": list(plan.loss_sources), "split": "test"},
        reference="unsup",
    )
    return SectionResult("loss", table, rows)


def weight_section(study: Study, plan: AblationPlan) -> SectionResult:
    """Contrastive weight at N = ``plan.weight_sources`` on the *validation* mixtures, against the
    profile's weight; ``chosen["weight"]`` is the weight of best mean validation SDR."""
    n, seed, default = plan.weight_sources, plan.seed, study.profile.contrastive_weight
    weights = list(plan.weights)
    runs = {weight_setting(w): train_weak(study, n, seed, w) for w in weights}
    rows = by_run(study.evaluate({"unsup": study.train("unsup", n, seed), **runs}, n, "val", with_clean=True))
    values = {weight_setting(w): w for w in weights}
    table = _write(
        study,
        "weight",
        rows,
        plan,
        {"seed": seed, "weights": weights, "sources": n, "split": "val"},
        reference=weight_setting(default),
        values=values,
    )
    chosen, val_sdr = choose_on_validation(rows, values)
    note = (
        f"validation SDR by weight: { {w: round(v, 3) for w, v in val_sdr.items()} }; "
        f"chosen weight {chosen:g} (default {default:g})"
    )
    return SectionResult("weight", table, rows, [note], {"weight": chosen, "validation_sdr": val_sdr})


def weight_test_section(study: Study, plan: AblationPlan, chosen: float) -> SectionResult:
    """The weight chosen on validation scored on the test mixtures beside the default (and at N = 2 too
    when it differs from the default): the test split only scores the choice."""
    seed, default = plan.seed, study.profile.contrastive_weight
    parts = []
    for n in weight_test_sources(plan.weight_sources, chosen, default):
        runs = {
            "unsup": study.train("unsup", n, seed),
            f"default {weight_setting(default)}": train_weak(study, n, seed, default),
        }
        if chosen != default:
            runs[f"chosen {weight_setting(chosen)}"] = train_weak(study, n, seed, chosen)
        parts.append(study.evaluate(runs, n, "test"))
    rows = by_run(pd.concat(parts, ignore_index=True))
    table = _write(
        study,
        "weight_test",
        rows,
        plan,
        {"seed": seed, "chosen_weight": chosen, "split": "test"},
        reference=f"default {weight_setting(default)}",
    )
    return SectionResult("weight_test", table, rows)


def clap_section(study: Study, plan: AblationPlan) -> SectionResult:
    """The weak model at N = ``plan.clap_sources`` trained with the default CLAP, a weaker one and an
    untrained audio tower, each judging its own model and the clean sources; against ``unsup``.

    Needs the default (proxy) CLAP, whose weaker variants it pretrains; skipped for another backend.
    """
    if study.clap_backend != "proxy":
        return SectionResult(
            "clap",
            None,
            notes=[
                f"section clap pretrains variants of the default CLAP; skipped for the {study.clap_backend} backend"
            ],
        )
    from .study import clap_card_of

    n, seed, p = plan.clap_sources, plan.seed, study.profile
    unsup = study.train("unsup", n, seed)
    study.clap()  # the default CLAP's checkpoint, pretrained if absent
    variants = {
        name: (study.clap_checkpoint if steps == p.clap_pretrain_steps else study.clap_variant(steps))
        for name, steps in clap_variant_steps(p.clap_pretrain_steps, plan.weaker_clap_share).items()
    }
    parts, values, notes = [study.evaluate({"unsup": unsup}, n, "test")], {}, []
    for name, path in variants.items():
        judged = study.sibling(clap_checkpoint=path, clap_backend="proxy")
        card = clap_card_of(path)
        rows = judged.evaluate({f"weak · {name}": judged.train("weak", n, seed)}, n, "test", with_clean=True)
        parts.append(clap_variant_rows(rows, name))
        values[f"weak · {name}"] = values[f"clean · {name}"] = card["zero_shot_accuracy"]
        notes.append(
            f"{name}: zero-shot accuracy {card['zero_shot_accuracy']:.3f}, mixture mAP {card['mixture_map']:.3f}"
        )
    rows = by_run(pd.concat(parts, ignore_index=True))
    table = _write(
        study,
        "clap",
        rows,
        plan,
        {
            "seed": seed,
            "sources": n,
            "zero_shot_accuracy": values,
            "variants": {k: portable_path(v) for k, v in variants.items()},
        },
        reference="unsup",
        values=values,
    )
    return SectionResult("clap", table, rows, notes)


def unheard_clap_section(study: Study, plan: AblationPlan) -> SectionResult:
    """weak at each N of ``plan.unheard_sources`` with the default CLAP and with CLAPs pretrained on
    soundfonts that exclude the separation soundfont (``plan.unheard_soundfonts``), against ``unsup``.

    The default CLAP pretrained on half TimGM6mb clips, the soundfont of every separation split;
    the paper's LAION-CLAP never heard MUSIC's recordings. ``unsup`` never uses the audio tower
    (its queries go through the frozen text tower, the same for every proxy CLAP), so one
    ``unsup`` run per N is the reference of every CLAP. Soundfont sets none of whose fonts is
    installed are skipped with a note; missing Debian fonts of a set are left out with a warning.
    Skipped for another backend than the proxy, and on a user's data (not rendered from a soundfont).
    """
    from ..data.soundfonts import available_soundfonts
    from .study import clap_card_of

    if study.clap_backend != "proxy" or study.manifests is not None:
        why = f"the {study.clap_backend} backend" if study.clap_backend != "proxy" else "data that are not rendered"
        return SectionResult(
            "unheard", None, notes=[f"section unheard pretrains proxy CLAPs on soundfonts; skipped for {why}"]
        )
    p, seed = study.profile, plan.seed
    study.clap()
    variants, notes = {f"CLAP {'+'.join(p.clap_soundfonts)}": (study, study.clap_checkpoint)}, []
    for fonts in plan.unheard_soundfonts:
        if p.separation_soundfont in fonts:
            raise ValueError(f"unheard_soundfonts {fonts} include the separation soundfont {p.separation_soundfont!r}")
        installed = tuple(available_soundfonts(fonts))
        name = f"CLAP {'+'.join(installed)}"
        if not installed or name in variants:
            notes.append(
                f"CLAP on {'+'.join(fonts)}: skipped ({'none installed' if not installed else 'same fonts as ' + name})"
            )
            continue
        path = study.clap_variant(soundfonts=installed, seed=seed)
        variants[name] = (study.sibling(clap_checkpoint=path, clap_backend="proxy"), path)
    parts, values = [], {}
    for n in plan.unheard_sources:
        parts.append(study.evaluate({"unsup": study.train("unsup", n, seed)}, n, "test"))
        for name, (judged, _) in variants.items():
            rows = judged.evaluate({f"weak · {name}": judged.train("weak", n, seed)}, n, "test", with_clean=True)
            parts.append(clap_variant_rows(rows, name))
    for name, (_, path) in variants.items():
        card = clap_card_of(path)
        values[f"weak · {name}"] = values[f"clean · {name}"] = card["zero_shot_accuracy"]
        notes.append(
            f"{name}: zero-shot accuracy {card['zero_shot_accuracy']:.3f} on the separation test clips, "
            f"mixture mAP {card['mixture_map']:.3f}"
        )
    rows = by_run(pd.concat(parts, ignore_index=True))
    config = {
        "seed": seed,
        "sources": list(plan.unheard_sources),
        "split": "test",
        "zero_shot_accuracy": values,
        "variants": {k: portable_path(v) for k, (_, v) in variants.items()},
    }
    table = _write(study, "unheard", rows, plan, config, reference="unsup", values=values)
    return SectionResult("unheard", table, rows, notes)


def text_section(study: Study, plan: AblationPlan) -> SectionResult:
    """unsup at N = ``plan.text_sources`` queried in training with the caption as a sentence (the
    paper) or with the mean of its entities' embeddings; against ``sentence``."""
    n, seed = plan.text_sources, plan.seed
    runs = {
        "sentence": study.train("unsup", n, seed),
        "entity mean": study.train("unsup", n, seed, mixture_text="entity_mean"),
    }
    rows = by_run(study.evaluate(runs, n, "test"))
    table = _write(study, "text", rows, plan, {"seed": seed, "sources": n, "split": "test"}, reference="sentence")
    return SectionResult("text", table, rows)


def fraction_section(study: Study, plan: AblationPlan) -> SectionResult:
    """sup and semi at each labelled fraction and seed of the plan (N = ``plan.fraction_sources``),
    each ``semi@f`` against ``sup@f``; fractions whose labelled clips cannot form a mixture of
    mixtures are left out with a note."""
    n = plan.fraction_sources
    planned, notes = plan_fractions(study.clips("train").labels, plan.fractions, plan.fraction_seeds, n)
    runs, values, pairs = {}, {}, {}
    for r in planned:
        runs[r.sup], values[r.sup] = study.train("sup", n, r.seed, label_fraction=r.fraction), r.fraction
        if r.semi is not None:
            runs[r.semi] = study.train("semi", n, r.seed, label_fraction=r.fraction)
            values[r.semi], pairs[r.semi] = r.fraction, r.sup
    rows = by_run(study.evaluate({"unsup": study.train("unsup", n, plan.seed), **runs}, n, "test"))
    table = _write(
        study,
        "fraction",
        rows,
        plan,
        {"fractions": list(plan.fractions), "seeds": list(plan.fraction_seeds), "sources": n, "split": "test"},
        reference=pairs,
        values=values,
    )
    return SectionResult("fraction", table, rows, notes)


def length_section(study: Study, plan: AblationPlan) -> SectionResult:
    """unsup and weak at N = ``plan.length_sources`` trained on to ``plan.length_factor`` x the profile's
    steps (continuing the cached runs), scored at every checkpoint; weak against unsup at the same step.

    These runs do not stop at their validation plateau: the section asks what more steps
    give, and both regimes must reach the same checkpoints to be paired.
    """
    n, seed = plan.length_sources, plan.seed
    steps = study.profile.steps * plan.length_factor
    snapshots = {
        regime: study.snapshots(study.train(regime, n, seed, steps=steps, snapshots=True, validate=False))
        for regime in ("unsup", "weak")
    }
    runs, values, pairs = snapshot_settings(snapshots)
    rows = study.evaluate(runs, n, "test")
    rows = by_run(rows[rows["run"] != "mixture"])
    table = _write(
        study,
        "length",
        rows,
        plan,
        {"seed": seed, "sources": n, "steps": steps, "split": "test"},
        reference=pairs,
        values=values,
    )
    return SectionResult("length", table, rows)


# The design changes that put the regimes on the same footing, each with the setting it
# replaced: (regime, label of the headline run, label of the undone run, its override).
DESIGN_CHANGES = (
    ("unsup", "unsup", "unsup, BatchNorm text", {"text_norm": "batch"}),
    ("weak", "weak", "weak, BatchNorm text", {"text_norm": "batch"}),
    ("sup", "sup", "sup on mixtures of mixtures", {"sup_input": "mixture_of_mixtures"}),
)


def design_section(study: Study, plan: AblationPlan) -> SectionResult:
    """Each design change of the fair comparison undone on its own, at N = ``plan.design_sources``:
    the text normalisation with fixed vocabulary statistics against the BatchNorm that learned
    each regime's own statistics (unsup, weak), and ``sup`` trained on mixtures of exactly N
    sources against mixtures of mixtures. Each undone run is paired with its headline run; the
    notes give both runs' best validation SDR (``selection.json``)."""
    n, seed = plan.design_sources, plan.seed
    runs, pairs, notes = {}, {}, []
    for regime, label, undone, override in DESIGN_CHANGES:
        runs[label] = study.train(regime, n, seed)
        runs[undone] = study.train(regime, n, seed, **override)
        pairs[undone] = label
        notes.append(
            f"validation SDR: {label} {_best_val(study.selection(runs[label]))}, "
            f"{undone} {_best_val(study.selection(runs[undone]))}"
        )
    rows = by_run(study.evaluate(runs, n, "test"))
    config = {"seed": seed, "sources": n, "split": "test", "changes": [list(c[1:3]) + [c[3]] for c in DESIGN_CHANGES]}
    table = _write(study, "design", rows, plan, config, reference=pairs)
    return SectionResult("design", table, rows, notes)


def _best_val(selection: dict[str, Any] | None) -> str:
    """A run's best validation SDR and its step, from its :meth:`Study.selection`."""
    if not selection:
        return "(no validation record)"
    return f"{selection['best_val_sdr']:.2f} dB at step {selection['best_step']}"


def _regime_and_fraction(label: str) -> tuple[str, float]:
    """``"sup@5%"`` -> ``("sup", 0.05)``; ``"weak"`` -> ``("weak", 1.0)`` (the inverse of ``run_label``)."""
    regime, _, pct = label.partition("@")
    return regime, float(pct.rstrip("%")) / 100 if pct else 1.0


def _lr_setting(label: str, lr: float) -> str:
    """The row name of regime ``label`` trained at rate ``lr``: ``"sup@5% lr=0.003"``."""
    return f"{label} lr={lr:g}"


def lr_section(study: Study, plan: AblationPlan) -> SectionResult:
    """Each regime of ``plan.lr_regimes`` trained at every learning rate of ``plan.lrs`` (N =
    ``plan.lr_sources``), scored on the *validation* mixtures; each setting is paired with the
    profile's rate, and ``chosen[label]`` is the rate of best mean validation SDR of each regime."""
    n, seed, default = plan.lr_sources, plan.seed, study.profile.lr
    lrs = list(dict.fromkeys([*plan.lrs, default]))
    runs, pairs, grid, chosen, notes = {}, {}, {}, {}, []
    for label in plan.lr_regimes:
        regime, fraction = _regime_and_fraction(label)
        extra = {"label_fraction": fraction} if fraction < 1 else {}
        grid[label] = {_lr_setting(label, lr): lr for lr in lrs}
        for setting, lr in grid[label].items():
            runs[setting] = study.train(regime, n, seed, **extra, **({} if lr == default else {"lr": lr}))
            if lr != default:
                pairs[setting] = _lr_setting(label, default)
    rows = by_run(study.evaluate(runs, n, "val"))
    for label, candidates in grid.items():
        chosen[label], means = choose_on_validation(rows, candidates)
        notes.append(
            f"{label}: validation SDR by lr { {f'{k:g}': round(v, 3) for k, v in means.items()} }; chosen {chosen[label]:g}"
        )
    values = {setting: lr for candidates in grid.values() for setting, lr in candidates.items()}
    config = {"seed": seed, "lrs": lrs, "regimes": list(plan.lr_regimes), "sources": n, "split": "val"}
    table = _write(study, "lr", rows, plan, config, reference=pairs, values=values)
    return SectionResult("lr", table, rows, notes, {"lr": chosen})


def lr_test_section(study: Study, plan: AblationPlan, chosen: dict[str, float]) -> SectionResult:
    """Each regime at the rate chosen on validation (``chosen``, from :func:`lr_section`) and at the
    profile's, over ``plan.lr_test_seeds``, scored on the test mixtures (N = ``plan.lr_sources``):
    the test split only scores the choice.

    Pairs: a chosen rate other than the profile's against the profile's, and ``semi@x%`` against
    ``sup@x%`` at the same kind of rate (both chosen, both the profile's): the semi-supervised
    claim on an equal footing of tuning, beside the claim as the headline table makes it.
    """
    n, default = plan.lr_sources, study.profile.lr
    settings: dict[str, tuple[str, dict[str, Any]]] = {}  # setting -> (regime, train overrides)
    pairs: dict[str, str] = {}
    for label, lr in chosen.items():
        regime, fraction = _regime_and_fraction(label)
        extra = {"label_fraction": fraction} if fraction < 1 else {}
        for rate in dict.fromkeys([lr, default]):
            settings[_lr_setting(label, rate)] = (regime, {**extra, **({} if rate == default else {"lr": rate})})
        sup = label.replace("semi@", "sup@")
        if regime == "semi" and sup in chosen:
            pairs[_lr_setting(label, lr)] = _lr_setting(sup, chosen[sup])
            pairs.setdefault(_lr_setting(label, default), _lr_setting(sup, default))
        elif lr != default:
            pairs[_lr_setting(label, lr)] = _lr_setting(label, default)
    parts = []
    for seed in plan.lr_test_seeds:
        runs = {setting: study.train(regime, n, seed, **kw) for setting, (regime, kw) in settings.items()}
        parts.append(study.evaluate(runs, n, "test").assign(seed=seed))
    rows = by_run(pd.concat(parts, ignore_index=True))
    values = {setting: kw.get("lr", default) for setting, (_, kw) in settings.items()}
    config = {"chosen": chosen, "seeds": list(plan.lr_test_seeds), "sources": n, "split": "test"}
    table = _write(study, "lr_test", rows, plan, config, reference=pairs, values=values)
    return SectionResult("lr_test", table, rows)


def group_setting(size: int, headline: int) -> str:
    """The setting name of a contrastive group size, e.g. ``group 8`` or ``group 2 (headline)``."""
    return f"group {size}" + (" (headline)" if size == headline else "")


def contrastive_group_section(study: Study, plan: AblationPlan) -> SectionResult:
    """weak with the contrastive candidates of 1, 2, ... examples (``plan.group_sizes``) at each N
    of ``plan.group_sources`` and seed of ``plan.group_seeds``, paired with the headline group size
    (the profile's ``contrastive_group``) on the same test queries; ``unsup`` beside, for scale.

    Group 1 is each estimate against the N entities of its own sub-mixture; the headline 2 is the
    authors' per-GPU batch; a size at least the batch is the whole batch. Every run is exported
    (``weak_n<N>_group<size>``) so that a fresh clone reuses it.
    """
    headline = study.profile.contrastive_group
    sizes = list(dict.fromkeys([headline, *plan.group_sizes]))
    parts, values = [], {}
    for seed in plan.group_seeds:
        for n in plan.group_sources:
            runs = {"unsup": study.train("unsup", n, seed)}
            for size in sizes:
                path = study.train("weak", n, seed, contrastive_group=size)
                runs[group_setting(size, headline)] = path
                if size != headline:
                    study.export_run(path, f"weak_n{n}_group{size}" + ("" if seed == 0 else f"_s{seed}"))
                values[group_setting(size, headline)] = float(size)
            parts.append(study.evaluate(runs, n, "test").assign(seed=seed))
    rows = by_run(pd.concat(parts, ignore_index=True))
    reference = {s: group_setting(headline, headline) for s in values if s != group_setting(headline, headline)}
    config = {
        "seeds": list(plan.group_seeds),
        "sources": list(plan.group_sources),
        "split": "test",
        "headline_group": headline,
        "batch_size": study.profile.batch_size,
    }
    table = _write(study, "group", rows, plan, config, reference=reference, values=values)
    return SectionResult("group", table, rows)
