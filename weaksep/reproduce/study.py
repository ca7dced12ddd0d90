"""The study: what every notebook calls.

:class:`Study` is the one object that knows where data, CLAPs, runs and results
live and which finished run to reuse; what it delegates to lives elsewhere:
training in ``weaksep/training/``, scores in ``weaksep/evaluation/``, tables in
``tables.py`` beside it, data in ``weaksep/data/``.

A :class:`Study` holds one profile and knows where things live:

* ``cache`` (``$WEAKSEP_CACHE``, else ``.cache/`` in the checkout): rendered
  corpora, test sets, the pretrained default CLAP and every training run, in a
  folder named after a hash of its config, so re-running a notebook reuses
  finished runs and resumes interrupted ones;
* ``results`` (``$WEAKSEP_RESULTS``, else ``results/`` for the quick profile
  and ``results/<profile>/`` for the others): tables, figures, model card.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import __version__
from ..clap import ClapBackend, load_clap
from ..data import ClipSet, Mixture, build_mixtures, load_clips, load_or_build_testset
from ..data.layouts import prepared_report
from ..data.store import StoredClips, prepare_store, store_dir
from ..evaluation.evaluate import evaluate_separators
from ..io import atomic_torch_save, atomic_write_text, safe_torch_load
from ..method.model import Separator
from ..paths import default_cache, default_results_dir, file_sha256, portable_path
from ..profiles import PROFILES, Profile, get_profile
from ..runs import TRAINING_SEMANTICS, RunConfig, git_commit, same_run
from ..training.checkpoint import load_separator, read_checkpoint
from ..training.train import continue_from, train
from .tables import save_table, summarise_table


def clap_card_of(path: str | Path) -> dict[str, Any]:
    """The model card saved inside a default-CLAP checkpoint (pretraining record and quality)."""
    return dict(safe_torch_load(path, "CLAP checkpoint").get("card") or {})


def resolve_data(data: str | Path | None, cache: str | Path | None = None) -> Path | None:
    """The manifest folder of ``data``: a folder of manifests itself, or the manifests of a MUSIC,
    VGGSound or AudioCaps root prepared into ``<cache>/manifests/<hash of its path>`` (missing and
    unreadable files skipped and counted); None for the rendered corpora."""
    if data is None:
        return None
    from ..data import prepare_data

    key = hashlib.sha256(str(Path(data).resolve()).encode()).hexdigest()[:12]
    return prepare_data(data, Path(cache or default_cache()) / "manifests" / key, skip_bad=True)


def manifest_kind(csv_path: Path) -> str:
    """ "caption" for a manifest whose header is ``path,caption`` (AudioCaps), else "label".

    A captioned clip is used as one source whose text is its caption: it is mixed
    with others, queried with its caption, and is the reference of that query.
    """
    with open(csv_path, encoding="utf-8") as f:
        header = f.readline()
    return "caption" if header.strip().lower().replace(" ", "").endswith(",caption") else "label"


class Study:
    """One profile of the study (see the module docstring).

    ``profile`` is a name (default ``$WEAKSEP_PROFILE`` or ``quick``) or a
    :class:`Profile`; keyword ``overrides`` change its settings.
    """

    def __init__(
        self,
        profile: str | Profile | None = None,
        *,
        data_root: str | Path | None = None,
        results_dir: str | Path | None = None,
        clap_backend: str | None = None,
        clap_checkpoint: str | Path | None = None,
        tokenizer_dir: str | Path | None = None,
        manifests: str | Path | None = None,
        progress: bool = True,
        reuse_committed: bool = False,
        accumulate: int = 1,
        workers: int = 0,
        gpus: int | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(profile, Profile):
            self.profile = profile.replace(**overrides) if overrides else profile
        else:
            self.profile = get_profile(profile, **overrides)
        self.cache = Path(data_root) if data_root else default_cache()
        self.results = Path(results_dir) if results_dir else default_results_dir(self.profile.name)
        self.clap_backend = clap_backend or self.profile.clap_backend
        self.clap_checkpoint = Path(clap_checkpoint) if clap_checkpoint else None
        self.tokenizer_dir = tokenizer_dir
        self.manifests = Path(manifests) if manifests else None
        if self.manifests is not None:
            missing = [f"{sp}.csv" for sp in ("train", "test") if not (self.manifests / f"{sp}.csv").is_file()]
            if missing:
                raise FileNotFoundError(
                    f"manifest folder {self.manifests} lacks {missing} (CSV files with a header 'path,label')"
                )
        self.progress = progress
        # micro-batches per step and batch-drawing processes (weaksep.training.train.train): not part of a run's identity
        self.accumulate, self.workers = accumulate, workers
        # processes per training run: several launch it under torchrun (make reproduce GPUS=k sets it)
        self.gpus = int(os.environ.get("WEAKSEP_GPUS", "1")) if gpus is None else int(gpus)
        # Use models committed in results/models (and their CLAP) when their saved run config is
        # the one asked for: the notebooks then open in minutes on a fresh clone.
        self.reuse_committed = reuse_committed
        self._clap: ClapBackend | None = None
        self._clap_sha: str | None = None
        if self.clap_backend == "laion" and self.clap_checkpoint is None:
            raise ValueError(
                "the laion CLAP backend needs its checkpoint: pass clap_checkpoint "
                "(e.g. music_audioset_epoch_15_esc_90.14.pt) or use clap_backend='proxy'"
            )

    # --- data -------------------------------------------------------------
    def clips(self, split: str, corpus: str = "instruments") -> ClipSet:
        """Single-source clips of ``split``: rendered, or read from ``<manifests>/<split>.csv``."""
        if self.manifests is None:
            return load_clips(self.cache, self.profile, corpus, split)
        return self.stored_clips(split)

    def stored_clips(self, split: str) -> StoredClips:
        """The files of ``<manifests>/<split>.csv``, decoded once into a store in the cache
        (:mod:`weaksep.data.store`) and read in crops: random across each file for training,
        the centre for validation and test."""
        p, csv_path = self.profile, self.manifests / f"{split}.csv"
        store = store_dir(self.cache, csv_path, p.sample_rate)
        if not (store / "index.csv").is_file():
            report = prepare_store(csv_path, store, p.sample_rate, p.clip_samples)
            print(report.summary(portable_path(store, self.cache)))
        return StoredClips(store, p.clip_samples, split)

    def testset(self, n_sources: int, split: str = "test", corpus: str = "instruments") -> Mixture:
        """The fixed ``n_sources``-source mixtures of ``split``, built once and saved."""
        if self.manifests is None:
            return load_or_build_testset(self.cache, self.profile, n_sources, split, corpus)
        csv = self.manifests / f"{split}.csv"
        key = hashlib.sha256(
            csv.read_bytes()
            + repr((self.profile.sample_rate, self.profile.clip_samples, self.profile.mixture_gain_db)).encode()
        ).hexdigest()[:10]
        path = self.cache / self.profile.name / f"manifest-{key}" / f"{split}_n{n_sources}.pt"
        if path.exists():
            d = safe_torch_load(path, "test set")
            return Mixture(d["mixtures"], d["sources"], d["labels"], d["texts"], d["clip_indices"], d["gains_db"])
        size = self.profile.n_test_mixtures if split == "test" else self.profile.n_val_mixtures
        mix = build_mixtures(self.clips(split), n_sources, size, tuple(self.profile.mixture_gain_db), seed=n_sources)
        atomic_torch_save(
            {
                "mixtures": mix.mixtures,
                "sources": mix.sources,
                "labels": mix.labels,
                "texts": mix.texts,
                "clip_indices": mix.clip_indices,
                "gains_db": mix.gains_db,
            },
            path,
        )
        return mix

    # --- CLAP -------------------------------------------------------------
    def default_clap_path(self) -> Path:
        p = self.profile
        key = p.config_hash(
            "sample_rate",
            "clip_samples",
            "clips_per_class",
            "clap_soundfonts",
            "clap_pretrain_steps",
            "clap_batch_size",
            "clap_channels",
            "n_mels",
        )
        from ..clap.proxy import AUDIO_TOWER_VERSION

        own = self.own_clap_split()
        if own is not None:  # a dataset with its own clap split (the recorded corpus) gets its own CLAP
            key += "-data" + hashlib.sha256(own.read_bytes()).hexdigest()[:10]
        return self.cache / p.name / "clap" / f"proxy-v{AUDIO_TOWER_VERSION}-{key}.pt"

    def clap_card_path(self) -> Path:
        """``results/clap_card.json``; ``clap_card_<data>.json`` for a dataset's own CLAP."""
        own = self.own_clap_split()
        return self.results / ("clap_card.json" if own is None else f"clap_card_{own.parent.name}.json")

    def own_clap_split(self) -> Path | None:
        """``<manifests>/clap.csv`` when the data has a split kept for the CLAP (never separated), else None."""
        path = self.manifests / "clap.csv" if self.manifests is not None else None
        return path if path is not None and path.is_file() else None

    def clap(self) -> ClapBackend:
        """The frozen CLAP of this study; the default one is pretrained here when absent."""
        if self._clap is None:
            if self.clap_checkpoint is not None:
                self._clap = (
                    load_clap(self.clap_backend, self.clap_checkpoint, tokenizer_dir=self.tokenizer_dir)
                    if self.clap_backend == "laion"
                    else load_clap("proxy", self.clap_checkpoint)
                )
            else:
                path = self.default_clap_path()
                committed = self._committed_clap()
                if not path.exists() and committed is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(committed, path)
                    print(
                        f"using the committed default CLAP {portable_path(committed, self.cache)} "
                        "(the one the committed models were trained with; REUSE=0 pretrains it anew)"
                    )
                if not path.exists():
                    self.pretrain_clap(path)
                self.clap_checkpoint = path
                self._clap = load_clap("proxy", path)
        return self._clap

    # --- models committed in results/ ------------------------------------------
    def _committed_clap(self) -> Path | None:
        """A committed ``models/clap_proxy.pt`` of the same CLAP settings, when reuse is on.

        Looked for in this study's results, then in every profile's default results
        folder: a profile whose CLAP settings equal another's (``converged`` and
        ``quick``) conditions on the very same committed CLAP instead of pretraining its own.
        """
        if not self.reuse_committed:
            return None
        wanted = self.default_clap_path().name  # the hash of its settings and tower version
        for results in (self.results, *(default_results_dir(name) for name in sorted(PROFILES))):
            own = results / "models" / wanted  # a dataset's own CLAP is committed under its cache name
            if own.is_file():
                return own
            path = results / "models" / "clap_proxy.pt"
            source = path.with_suffix(".source")  # the cache name it was copied from
            if path.exists() and source.exists() and source.read_text().strip() == wanted:
                return path
        return None

    def committed_model(self, cfg: RunConfig) -> Path | None:
        """A model in ``results/models`` whose saved run config is ``cfg`` (same code, CLAP, data, ...)."""
        if not self.reuse_committed:
            return None
        for path in sorted((self.results / "models").glob("*.pt")):
            if path.name == "clap_proxy.pt" or path.name.startswith("proxy-v"):  # CLAPs
                continue
            try:
                saved = read_checkpoint(path)["run_config"]
            except (ValueError, OSError):
                continue
            if same_run(saved, cfg):
                return path
        return None

    def pretrain_clap(self, path: Path | None = None, **kwargs: Any) -> dict[str, Any]:
        """Pretrain the default CLAP into ``path``; write its model card into ``results``."""
        from ..clap.pretrain import pretrain_proxy_clap, write_model_card

        path = path or self.default_clap_path()
        if self.own_clap_split() is not None:
            from ..clap.pretrain import evaluate_clap_on

            kwargs.setdefault("clip_sets", [self.stored_clips("clap")])
            kwargs.setdefault(
                "evaluate",
                lambda clap: evaluate_clap_on(
                    clap, self.stored_clips("test"), self.testset(2), self.profile.sample_rate
                ),
            )
        clap, card = pretrain_proxy_clap(self.profile, self.cache, path, progress=self.progress, **kwargs)
        write_model_card(card, self.clap_card_path())
        self._clap, self.clap_checkpoint = clap, path
        return card

    def clap_variant(self, steps: int | None = None, seed: int = 0, soundfonts: tuple[str, ...] | None = None) -> Path:
        """A default CLAP pretrained for ``steps`` steps (None: the profile's; 0: an untrained audio
        tower) on the clips of ``soundfonts`` (None: the profile's ``clap_soundfonts``), for ablations.

        Saved in the cache beside the default one; its card travels inside the
        checkpoint (:func:`clap_card_of`) and ``results/clap_card.json`` is not touched.
        Use it with ``study.sibling(clap_checkpoint=path, clap_backend="proxy")``.

        Other soundfonts render their corpora under a root of their own
        (``<cache>/clap_fonts/<names>``): the corpus of a root is rendered for one
        set of CLAP soundfonts, and re-rendering the shared one would also remove
        the separation test mixtures built on it. The separation splits there are
        the same clips (same soundfont, same seeds), so the card's zero-shot
        accuracy is measured on the separation test clips.
        """
        from ..clap.pretrain import pretrain_proxy_clap

        steps = self.profile.clap_pretrain_steps if steps is None else steps
        default = self.default_clap_path()
        profile, root, name = self.profile, self.cache, f"{default.stem}-steps{steps}-seed{seed}"
        if soundfonts is not None and tuple(soundfonts) != tuple(self.profile.clap_soundfonts):
            profile = self.profile.replace(clap_soundfonts=tuple(soundfonts))
            root = self.cache / "clap_fonts" / "+".join(soundfonts)
            name += "-fonts-" + "+".join(soundfonts)
        path = default.with_name(f"{name}.pt")
        if not path.exists():
            pretrain_proxy_clap(profile, root, path, steps=steps, seed=seed, progress=self.progress)
        return path

    def clap_card(self) -> dict[str, Any]:
        """The CLAP's model card (pretraining record and quality), also written to ``results/clap_card.json``."""
        from ..clap.pretrain import evaluate_clap, write_model_card

        clap = self.clap()
        assert self.clap_checkpoint is not None
        saved = safe_torch_load(self.clap_checkpoint, "CLAP checkpoint") if self.clap_backend == "proxy" else {}
        card = dict(saved.get("card") or {})
        if not card:  # a user-supplied checkpoint: measure it here
            card = {
                "backend": self.clap_backend,
                "checkpoint": portable_path(self.clap_checkpoint, self.cache),  # results hold no machine path
                **evaluate_clap(clap, self.profile, self.cache),
            }
        write_model_card(card, self.clap_card_path())
        if self.clap_backend == "proxy" and self.own_clap_split() is not None:
            # a dataset's own CLAP goes beside the models under its cache name, where
            # `weaksep separate` and reuse look for it; clap_proxy.pt stays the rendered one's
            dest = self.results / "models" / Path(self.clap_checkpoint).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if Path(self.clap_checkpoint).resolve() != dest.resolve():
                shutil.copyfile(self.clap_checkpoint, dest)
        elif self.clap_backend == "proxy":  # ship it beside the models, for `weaksep separate` elsewhere
            dest = self.results / "models" / "clap_proxy.pt"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.clap_checkpoint, dest)
            atomic_write_text(dest.with_suffix(".source"), Path(self.clap_checkpoint).name + "\n")
        return card

    def clap_info(self) -> dict[str, Any]:
        self.clap()
        assert self.clap_checkpoint is not None
        if self._clap_sha is None:
            self._clap_sha = file_sha256(self.clap_checkpoint)
        return {
            "backend": self.clap_backend,
            "checkpoint": portable_path(self.clap_checkpoint, self.cache),
            "sha256": self._clap_sha,
        }

    # --- training ---------------------------------------------------------
    def run_config(self, regime: str, n_sources: int, seed: int = 0, **overrides: Any) -> RunConfig:
        p = self.profile
        if self.manifests is not None:
            # A user's clips carry their own texts (class names or captions): the captions that
            # the rendered sound-event corpus makes from its class names do not apply to them.
            overrides["corpus"] = "instruments"
        label_fraction = overrides.pop("label_fraction", None)
        if label_fraction is None:
            label_fraction = p.label_fraction if regime == "semi" else 1.0
        return RunConfig(
            regime=regime,
            n_sources=n_sources,
            profile=p.to_dict(),
            seed=seed,
            steps=overrides.pop("steps", p.steps),
            label_fraction=label_fraction,
            contrastive_weight=overrides.pop("contrastive_weight", p.contrastive_weight),
            reconstruction_weight=overrides.pop("reconstruction_weight", p.reconstruction_weight),
            contrastive_group=overrides.pop("contrastive_group", p.contrastive_group),
            clap=self.clap_info(),
            data=self.data_name(),
            code=TRAINING_SEMANTICS,
            version=__version__,
            commit=git_commit(),
            **overrides,
        )

    def data_name(self) -> str:
        """Where the clips come from, as saved in run configs: ``rendered`` or ``manifests:<folder>:<hash>``."""
        if self.manifests is None:
            return "rendered"
        digest = hashlib.sha256(
            b"".join(
                (self.manifests / f"{sp}.csv").read_bytes()
                for sp in ("train", "val", "test")
                if (self.manifests / f"{sp}.csv").exists()
            )
        )
        return f"manifests:{self.manifests.name}:{digest.hexdigest()[:10]}"

    def data_info(self) -> dict[str, Any]:
        """What the clips are, as every results config records it.

        ``{"source": "rendered"}``; or ``{"source": "manifests", "manifests": <folder>:<hash>}``,
        plus, when the manifests were prepared from a dataset in its public layout, that
        ``layout``, the ``root`` folder's name (not its path: results carry no machine path),
        the clips ``kept`` and ``missing`` per split and the number of bad rows skipped.
        """
        if self.manifests is None:
            return {"source": "rendered"}
        info: dict[str, Any] = {"source": "manifests", "manifests": self.data_name().split(":", 1)[1]}
        report = prepared_report(self.manifests)
        if report is not None:
            info.update(
                layout=report.layout,
                root=Path(report.root).name,
                kept=report.kept,
                missing=report.missing,
                skipped_bad=len(report.skipped),
            )
        return info

    def text_cache_path(self) -> Path:
        """The CLAP text embeddings shared by every run of this CLAP (a file in the cache)."""
        return self.cache / self.profile.name / "text" / f"{self.clap_info()['sha256']}.pt"

    def run_dir(self, cfg: RunConfig) -> Path:
        blob = json.dumps(cfg.identity(), sort_keys=True, default=str)
        tag = f"{cfg.regime}-n{cfg.n_sources}"
        if cfg.regime in ("sup", "semi") and cfg.label_fraction < 1:
            tag += f"-f{cfg.label_fraction:g}"
        return (
            self.cache
            / self.profile.name
            / "runs"
            / f"{tag}-s{cfg.seed}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"
        )

    def train(
        self,
        regime: str,
        n_sources: int,
        seed: int = 0,
        out_dir: str | Path | None = None,
        snapshots: bool = False,
        validate: bool = True,
        **overrides: Any,
    ) -> Path:
        """Train (or reuse, or resume) a run; returns the path of the model to use.

        With ``validate`` (the default) the run is scored on the validation
        mixtures at every checkpoint, stops at its plateau and returns its best
        validation checkpoint (``best.pt``); otherwise its last weights (``model.pt``).

        A longer version of a finished cached run trains on from that run's
        last checkpoint (the same model, see :func:`weaksep.training.train.continue_from`).
        ``snapshots`` keeps the model of every checkpoint, for training curves.
        """
        return self.train_run(self.run_config(regime, n_sources, seed, **overrides), out_dir, snapshots, validate)

    def train_run(
        self, cfg: RunConfig, out_dir: str | Path | None = None, snapshots: bool = False, validate: bool = True
    ) -> Path:
        """:meth:`train` for a run config made already (by :meth:`run_config`, or read from a run's
        ``config.json``). With ``gpus`` above 1 and outside torchrun, the training itself runs under
        ``torchrun`` with that many processes (:meth:`_train_under_torchrun`)."""
        regime, n_sources, seed = cfg.regime, cfg.n_sources, cfg.seed
        committed = self.committed_model(cfg) if out_dir is None else None
        if committed is not None:
            made_at = read_checkpoint(committed)["run_config"].get("commit") or "?"
            print(
                f"{regime} N={n_sources} seed {seed}: using the committed model {portable_path(committed, self.cache)} "
                f"(its saved run config is the one asked for; trained at commit {made_at[:12]}); nothing trained"
            )
            return committed
        out = Path(out_dir) if out_dir else self.run_dir(cfg)
        if out_dir is None and not (out / "checkpoint.pt").exists():
            for shorter in self._shorter_runs(cfg):
                if continue_from(shorter, cfg, out):
                    break
        if self.gpus > 1 and "WORLD_SIZE" not in os.environ:
            return self._train_under_torchrun(cfg, out, snapshots, validate)
        val = self.testset(cfg.n_sources, "val", cfg.corpus) if validate else None
        return train(
            cfg,
            self.profile,
            self.clips("train", cfg.corpus),
            self.clap(),
            out,
            val=val,
            progress=self.progress,
            snapshots=snapshots,
            text_cache=self.text_cache_path(),
            accumulate=self.accumulate,
            workers=self.workers,
        )

    def _train_under_torchrun(self, cfg: RunConfig, out: Path, snapshots: bool, validate: bool) -> Path:
        """Train ``cfg`` in ``out`` with ``self.gpus`` processes of ``torchrun`` (one per GPU; gloo on a
        CPU), on this study's data and CLAP; the path of the model to use, as :func:`train` returns it."""
        import subprocess
        import sys

        # Resolved here once, not raced by every process: the CLAP (pretrained if need be), the
        # training clips (rendered or stored) and the saved validation mixtures.
        self.clap()
        self.clips("train", cfg.corpus)
        if validate:
            self.testset(cfg.n_sources, "val", cfg.corpus)
        out.mkdir(parents=True, exist_ok=True)
        request = out / "config.request.json"
        atomic_write_text(request, json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(self.gpus)]
        cmd += ["-m", "weaksep", "train", "--run-config", str(request), "--out", str(out)]
        cmd += [
            "--data-root",
            str(self.cache),
            "--clap",
            self.clap_backend,
            "--clap-checkpoint",
            str(self.clap_checkpoint),
        ]
        cmd += ["--workers", str(self.workers), "--accumulate", str(self.accumulate)]
        cmd += [] if self.manifests is None else ["--manifests", str(self.manifests)]
        cmd += [] if self.tokenizer_dir is None else ["--tokenizer-dir", str(self.tokenizer_dir)]
        cmd += ([] if validate else ["--no-validate"]) + (["--snapshots"] if snapshots else [])
        cmd += [] if self.progress else ["--no-progress"]
        done = subprocess.run(cmd)
        if done.returncode:
            raise RuntimeError(f"training under torchrun ({self.gpus} processes) failed: {' '.join(cmd)}")
        best, final = out / "best.pt", out / "model.pt"
        return best if validate and best.exists() else final

    def _shorter_runs(self, cfg: RunConfig) -> list[Path]:
        """Cached runs of ``cfg`` with fewer steps, longest first."""
        found = []
        for d in (self.cache / self.profile.name / "runs").glob(f"{cfg.regime}-n{cfg.n_sources}*-s{cfg.seed}-*"):
            try:
                saved = json.loads((d / "config.json").read_text())
            except (OSError, ValueError):
                continue
            if saved.get("steps", cfg.steps) < cfg.steps and same_run(saved, cfg, ignore=("steps",)):
                found.append((saved["steps"], d))
        return [d for _, d in sorted(found, reverse=True)]

    def snapshots(self, model_path: str | Path) -> dict[int, Path]:
        """Step -> model file of a run trained with ``snapshots=True`` (its final step included)."""
        run = Path(model_path).parent
        out = {int(p.stem.split("_")[1]): p for p in sorted((run / "snapshots").glob("step_*.pt"))}
        if not out:
            raise FileNotFoundError(f"run {run} kept no snapshots: train it with snapshots=True")
        return out

    def run_files(self, model_path: str | Path) -> Path:
        """The folder of a model's run files (``log.csv``, ``val.csv``, ``selection.json``): its run
        folder in the cache, or ``results/runs/<name>`` for a committed model."""
        model_path = Path(model_path)
        if model_path.parent.resolve() == (self.results / "models").resolve():
            return self.results / "runs" / model_path.stem
        return model_path.parent

    def selection(self, model_path: str | Path) -> dict[str, Any] | None:
        """A run's ``selection.json`` (its best validation step and SDR, where it stopped, whether it
        plateaued), or None when the run kept no validation record."""
        path = self.run_files(model_path) / "selection.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError as e:
            raise ValueError(f"{path} is not valid JSON ({e}): delete it and retrain the run") from e

    def sibling(
        self,
        profile: Profile | None = None,
        clap_checkpoint: str | Path | None = None,
        clap_backend: str | None = None,
    ) -> Study:
        """This study on the same data, cache and results, with another ``profile`` (e.g. another
        batch size) or another CLAP: ``clap_checkpoint`` of ``clap_backend`` (default: this study's
        CLAP, resolved first, i.e. reused or pretrained, and its backend)."""
        if clap_checkpoint is None:
            self.clap()  # sets self.clap_checkpoint: the committed, cached or newly pretrained one
        return Study(
            profile or self.profile,
            data_root=self.cache,
            results_dir=self.results,
            clap_backend=clap_backend or self.clap_backend,
            clap_checkpoint=clap_checkpoint or self.clap_checkpoint,
            tokenizer_dir=self.tokenizer_dir,
            manifests=self.manifests,
            progress=self.progress,
            reuse_committed=self.reuse_committed,
        )

    def load_model(self, path: str | Path) -> Separator:
        return load_separator(path)[0]

    # --- evaluation -------------------------------------------------------
    def evaluate(
        self,
        runs: dict[str, str | Path],
        n_sources: int,
        split: str = "test",
        with_clean: bool = False,
        corpus: str = "instruments",
    ) -> pd.DataFrame:
        """Per-query rows of the models ``runs`` (label -> model path) on the saved ``split`` mixtures.

        Adds the columns ``regime``, ``label_fraction`` and ``n_sources``; the
        unprocessed mixture comes as run and regime ``mixture`` and, with
        ``with_clean``, the clean sources as ``clean`` (CLAP columns only).
        """
        loaded = {label: load_separator(path) for label, path in runs.items()}
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        for model, _ in loaded.values():  # separate and score on the GPU where there is one (weaksep.evaluation.scores)
            model.to(device)
        df = evaluate_separators(
            {k: m for k, (m, _) in loaded.items()},
            self.clap(),
            self.testset(n_sources, split, corpus),
            self.profile.sample_rate,
            self.profile.eval_batch_size,
            with_clean=with_clean,
        )
        fixed = {"mixture": "mixture", "clean": "clean"}
        regime = {k: cfg["regime"] for k, (_, cfg) in loaded.items()} | fixed
        fraction = {
            k: (cfg["label_fraction"] if cfg["regime"] in ("sup", "semi") else 0.0) for k, (_, cfg) in loaded.items()
        } | {k: 0.0 for k in fixed}
        df["regime"] = df["run"].map(regime)
        df["label_fraction"] = df["run"].map(fraction)
        df["n_sources"] = n_sources
        # N of the mixtures each model was trained on: every row of a table is a model of that table's N.
        df["trained_n_sources"] = df["run"].map({k: cfg["n_sources"] for k, (_, cfg) in loaded.items()})
        return df

    def write_table(
        self, name: str, table: str, query_rows: pd.DataFrame, config: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Summarise per-query rows into ``results/<name>.csv`` (plus the rows and the config beside it)."""
        summary = summarise_table(query_rows, table, self.profile.name)
        save_table(summary, self.results / f"{name}.csv")
        self._write_beside(name, query_rows, config)
        return summary

    def write_ablation(
        self,
        section: str,
        query_rows: pd.DataFrame,
        reference: str | dict[str, str] | None = None,
        values: dict[str, float] | None = None,
        config: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """``results/07_ablations_<section>.csv`` from per-query rows with a ``setting`` column
        (see :mod:`weaksep.reproduce.ablations`), plus the rows and the config beside it."""
        from .ablations import save_ablation, summarise_ablation

        name = f"07_ablations_{section}"
        table = summarise_ablation(query_rows, section, self.profile.name, reference, values)
        save_ablation(table, self.results / f"{name}.csv")
        self._write_beside(name, query_rows, {"reference": reference, **(config or {})})
        return table

    def _write_beside(self, name: str, query_rows: pd.DataFrame, config: dict[str, Any] | None) -> None:
        """``queries/<name>.csv`` (the per-query rows) and ``configs/<name>.json`` (what made the table)."""
        atomic_write_text(self.results / "queries" / f"{name}.csv", query_rows.to_csv(index=False))
        cfg = {
            "profile": self.profile.to_dict(),
            "version": __version__,
            "clap": self.clap_info(),
            "data": self.data_info(),
            **(config or {}),
        }
        atomic_write_text(
            self.results / "configs" / f"{name}.json", json.dumps(cfg, indent=2, sort_keys=True, default=str) + "\n"
        )

    def export_run(self, model_path: str | Path, name: str) -> Path:
        """Copy a finished run's model and training log into ``results/models`` and ``results/runs``."""
        model_path = Path(model_path)
        dest = self.results / "models" / f"{name}.pt"
        if dest.exists() and dest.resolve() == model_path.resolve():
            return dest  # a committed model in use: already exported, with its run files
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_path, dest)
        run_dir = self.results / "runs" / name
        run_dir.mkdir(parents=True, exist_ok=True)
        for f in ("log.csv", "val.csv", "selection.json", "config.json", "labelled_clips.json"):
            if (model_path.parent / f).exists():
                shutil.copyfile(model_path.parent / f, run_dir / f)
        return dest
