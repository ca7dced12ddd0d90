"""``make reproduce`` as a user runs it on their own data and CLAP.

One study runs every notebook through the Makefile end to end (papermill, a
fresh kernel per notebook) at the smoke profile with two steps per run, on an
AudioCaps-layout fixture, into a results folder of its own
(``WEAKSEP_RESULTS``), and checks what a user would look at: the summary, and
that every table's config names the data it was made with. The kernels import
this checkout's ``weaksep`` (``PYTHONPATH``), whatever the virtual
environment's editable install points to.

One study, not one per layout and backend: each costs about four minutes,
and what differs between them lies below the notebooks, where it is tested
directly (the layouts in ``test_layouts.py``, a study with the LAION-CLAP
backend in ``test_clap_laion.py``). What the Makefile hands the notebooks for
every setting (data, CLAP, tokenizer, seeds, steps) is checked here from
``make -n``, in a second.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from weaksep.data.fixtures import write_fixture

REPO = Path(__file__).resolve().parents[1]
TABLES = ("01_two_source", "02_three_source", "03_four_source", "04_semi_supervised", "08_captioned_events")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make_reproduce(tmp_path: Path, **variables: object) -> tuple[Path, str]:
    """Run ``make reproduce PROFILE=smoke STEPS=2 <variables>``; return the results folder and make's output."""
    env = {**os.environ, "WEAKSEP_RESULTS": str(tmp_path / "results")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    cmd = ["make", "--no-print-directory", "-C", str(REPO), "reproduce", "PROFILE=smoke", "STEPS=2"]
    cmd += [f"{k}={v}" for k, v in variables.items()]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return tmp_path / "results" / "smoke", proc.stdout


def table_configs(results: Path) -> dict[str, dict]:
    return {name: json.loads((results / "configs" / f"{name}.json").read_text()) for name in TABLES}


def check_layout_tables(results: Path, root: Path, record) -> None:
    """Every table trained and tested on the fixture's clips, and its config says so."""
    for name, cfg in table_configs(results).items():
        data = cfg["data"]
        assert data["source"] == "manifests" and data["layout"] == record.layout and data["root"] == root.name, name
        assert data["missing"] == record.missing and data["skipped_bad"] == 1, name  # the corrupt file
        rows = pd.read_csv(results / "queries" / f"{name}.csv")
        assert len(rows) > 0 and rows["sdr"].notna().all(), name
    if record.layout != "audiocaps":  # AudioCaps queries are captions, not class names
        assert set(pd.read_csv(results / "queries" / "01_two_source.csv")["entity"]) <= set(record.classes)
    assert len(pd.read_csv(results / "summary.csv")) > 0


@pytest.mark.slow  # minutes: eight notebooks, each in a fresh kernel
def test_make_reproduce_on_captioned_data_in_the_audiocaps_layout(tmp_path):
    root = tmp_path / "audiocaps"
    record = write_fixture("audiocaps", root)  # a few listed files missing and one corrupt: skipped and counted
    results, out = make_reproduce(tmp_path, DATA=root, EVENTS_DATA=root)  # the one root feeds both settings
    assert "weak" in out  # make ends by printing summary.md
    check_layout_tables(results, root, record)
    for name, cfg in table_configs(results).items():
        assert cfg["clap"]["backend"] == "proxy", name
    assert (results / "notebooks" / "06_try_it.ipynb").exists()


def _notebook_parameters(notebook: Path) -> set[str]:
    """The names the ``parameters`` cell of ``notebook`` assigns."""
    cells = json.loads(notebook.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets}


@pytest.mark.parametrize("notebook", sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb")))
def test_papermill_reads_every_parameter_with_its_help(notebook):
    """papermill's own reader (``papermill --help-notebook``) skips, with an "Unable to parse" warning
    in every run's log, a parameter line it cannot parse (an ``=`` in its comment does it)."""
    from papermill.inspection import inspect_notebook

    path = REPO / "notebooks" / notebook
    assert set(inspect_notebook(str(path))) == _notebook_parameters(path)


def _papermill_calls(make_output: str) -> dict[str, dict[str, object]]:
    """notebook name -> the parameters of its papermill call (``-p name value``, ``-y yaml``) in ``make -n``'s output."""
    calls = {}
    for line in make_output.replace("\\\n", " ").splitlines():
        if "papermill" not in line:
            continue
        args, params = shlex.split(line), {}
        for flag, value in zip(args, args[1:]):
            if flag == "-y":
                params.update(yaml.safe_load(value))
        for i, flag in enumerate(args[:-2]):
            if flag == "-p":
                params[args[i + 1]] = args[i + 2]
        calls[Path(args[args.index("--cwd") + 2]).stem] = params
    return calls


@pytest.mark.parametrize("ablations", [False, True])
def test_make_hands_every_setting_to_the_notebooks_that_declare_it(tmp_path, ablations):
    """A setting papermill passes to a notebook that does not declare it is silently ignored: each
    must reach every notebook that declares it, with its value, and every notebook that trains."""
    data, events, ckpt, tok = tmp_path / "data", tmp_path / "events", tmp_path / "clap.pt", tmp_path / "tokenizer"
    env = {**os.environ, "WEAKSEP_RESULTS": str(tmp_path / "results")}
    settings = [
        "PROFILE=smoke",
        f"DATA={data}",
        f"EVENTS_DATA={events}",
        "CLAP_BACKEND=laion",
        f"CLAP_CKPT={ckpt}",
        f"TOKENIZER={tok}",
        "SEEDS=0,1",
        "STEPS=3",
        "REUSE=1",
        *(["SECTIONS=design,lr"] if ablations else []),
    ]
    cmd = ["make", "-n", "--no-print-directory", "-C", str(REPO), "ablations" if ablations else "reproduce", *settings]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    calls = _papermill_calls(proc.stdout)
    # Every executed notebook has its progress bars collapsed to their last redraw before it is kept.
    lines = proc.stdout.splitlines()
    executed = [line.split()[4] for line in lines if "papermill " in line]
    collapsed = [line.split()[-1] for line in lines if "-m weaksep collapse-progress" in line]
    assert executed and collapsed == executed, proc.stdout
    expected = {
        "profile": "smoke",
        "data": str(data),
        "clap_backend": "laion",
        "clap_checkpoint": str(ckpt),
        "tokenizer_dir": str(tok),
        "seeds": [0, 1],
        "steps": "3",
        "reuse": "True",
        **({"sections": "design,lr"} if ablations else {}),
    }
    assert set(calls) >= {"01_two_source", "02_three_source", "04_semi_supervised", "05_summary"}
    assert ("07_ablations" in calls) == ablations
    for notebook, params in calls.items():
        declared = _notebook_parameters(REPO / "notebooks" / f"{notebook}.ipynb")
        # each setting its own data root: 08 the sound events', 09 none (the recorded corpus)
        own = {"08_captioned_events": {"data": str(events)}, "09_recorded_events": {"data": None}}.get(notebook, {})
        wanted = {k: v for k, v in {**expected, **own}.items() if k in declared or k in own}
        assert {k: params.get(k) for k in wanted} == wanted, notebook
    trains = [nb for nb in calls if nb[:2] in {"01", "02", "03", "04", "08"}]
    assert len(trains) == 5
    for notebook in trains:
        assert set(expected) - {"sections"} <= _notebook_parameters(REPO / "notebooks" / f"{notebook}.ipynb")
