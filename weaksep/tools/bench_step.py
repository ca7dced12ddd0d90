"""The cost of one training step, measured in a fresh process; runs against this or an older checkout.

``weaksep bench-step REGIME N [--steps K]`` prints one JSON line:
median s/step over K steps after 2 warm-up steps, the step's FLOPs (forward
and backward, ``torch.utils.flop_counter``), the GFLOP/s of a 1024 x 1024 fp32
matrix product measured in the same process just before, and the step's
achieved FLOP/s as a share of it: a figure that does not move with how busy
the machine is, as s/step does.

``--whole-run`` times instead one whole training run as the study makes it
(``Study.train`` into a fresh folder, with that code's own step budget,
validation and stopping), wall seconds from the call to the returned model.

``weaksep bench`` loads this file by its path in fresh processes whose
``PYTHONPATH`` names a checkout of an earlier commit, to time that code's step
beside this one's (the "before" of an optimisation). It therefore imports
``weaksep`` by absolute names only and speaks to both the current API and the
ones before: the flat package (``weaksep.study``, ``weaksep.train``) and, before
that, the one before ``weaksep.objective`` existed.
"""

from __future__ import annotations

import importlib
import resource
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

MATMUL_SIZE = 1024


def matmul_gflops(repeats: int = 20) -> float:
    """GFLOP/s of a 1024 x 1024 fp32 matrix product, median of ``repeats``."""
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * MATMUL_SIZE**3 / statistics.median(times) / 1e9


def _module(*names: str):
    """The first of the modules ``names`` that the checkout on PYTHONPATH has (its layout of the package)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not e.name or not name.startswith(e.name):  # a module it needs is missing, not this one
                raise
            missing = e
    raise missing


def _study(profile_name: str):
    return _module("weaksep.reproduce.study", "weaksep.study").Study(profile_name, progress=False)


def _step_function(profile_name: str, regime: str, n_sources: int):
    """A closure running training step ``s`` of the checkout on PYTHONPATH (new or old API)."""
    from weaksep.clap.proxy import ProxyClap

    study = _study(profile_name)
    p = study.profile
    clips = study.clips("train")
    # Speed does not depend on what the CLAP learned: an untrained tower of the same size costs the same.
    clap = ProxyClap(p.sample_rate, p.n_mels, p.clap_channels).freeze()
    fraction = p.label_fraction if regime == "semi" else 1.0
    try:
        from weaksep.runs import RunConfig

        objective = _module("weaksep.method.objective", "weaksep.objective")
        BatchSource, training_losses = objective.BatchSource, objective.training_losses
        train = _module("weaksep.training.train", "weaksep.train")
        build_separator, make_optimizer = train.build_separator, train.make_optimizer

        cfg = RunConfig(regime=regime, n_sources=n_sources, profile=p.to_dict(), steps=100, label_fraction=fraction)
        if hasattr(p, "contrastive_group"):  # the candidate set of the profile, where the code has one
            cfg.contrastive_group = p.contrastive_group
        model = build_separator(cfg, p, clap, clips)
        opt = make_optimizer(model, cfg, p, torch.device("cpu"))
        if study.default_clap_path().exists():  # as a run of the study does (never pretrain a CLAP here)
            clap.load_text_cache(study.text_cache_path())

        def losses(source, s):
            return training_losses(model, clap, source.batch(s), cfg, p.sample_rate)
    except ImportError:  # the API before weaksep.objective
        from weaksep.train import BatchSource, RunConfig, compute_losses, separator_config

        cfg = RunConfig(regime=regime, n_sources=n_sources, profile=p.to_dict(), steps=100, label_fraction=fraction)
        model = __import__("weaksep.model", fromlist=["Separator"]).Separator(separator_config(p, clap))
        opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)

        def losses(source, s):
            batch, labelled = source.batch(s)
            return compute_losses(model, clap, batch, cfg, p.sample_rate, labelled)

    source = BatchSource(clips, cfg, p, p.batch_size, 0)
    model.train()

    def step(s: int) -> None:
        terms = losses(source, s)
        opt.zero_grad(set_to_none=True)
        terms["loss_total"].backward()
        opt.step()

    return step


def measure(profile_name: str, regime: str, n_sources: int, steps: int) -> dict[str, float]:
    step = _step_function(profile_name, regime, n_sources)
    for s in range(2):
        step(s)
    gflops_ref = matmul_gflops()
    counter = FlopCounterMode(display=False)
    with counter:
        step(2)
    times = []
    for s in range(3, 3 + steps):
        t = time.perf_counter()
        step(s)
        times.append(time.perf_counter() - t)
    s_per_step = statistics.median(times)
    flops = float(counter.get_total_flops())
    return {
        "s_per_step": s_per_step,
        "gflop_per_step": flops / 1e9,
        "matmul_gflops": gflops_ref,
        "flops_share": flops / s_per_step / (gflops_ref * 1e9),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def whole_run(profile_name: str, regime: str, n_sources: int) -> dict[str, float]:
    """Wall seconds of one whole training run of the checkout on PYTHONPATH, made as its study makes it."""
    import tempfile

    study = _study(profile_name)
    if not study.default_clap_path().exists():  # pretraining a CLAP is not part of a run's cost
        raise SystemExit(f"no pretrained CLAP at {study.default_clap_path()}: run notebook 00 of {profile_name} first")
    study.clap()  # loaded before the clock starts, as the notebooks have them loaded before they train
    study.clips("train")
    with tempfile.TemporaryDirectory(prefix="weaksep-bench-run-") as out:
        start = time.perf_counter()
        study.train(regime, n_sources, out_dir=out)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "budget_steps": study.profile.steps}


def profiler_table(profile_name: str, regime: str, n_sources: int, steps: int = 3, rows: int = 25) -> str:
    """A ``torch.profiler`` table (CPU time by operator) of ``steps`` training steps after 2 warm-up steps."""
    from torch.profiler import ProfilerActivity, profile

    step = _step_function(profile_name, regime, n_sources)
    for s in range(2):
        step(s)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for s in range(2, 2 + steps):
            step(s)
    return prof.key_averages().table(sort_by="cpu_time_total", row_limit=rows)
