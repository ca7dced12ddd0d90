"""``make reproduce`` end to end at the smoke profile, as a user runs it on their own data and CLAP.

Each test runs every study notebook through the Makefile (papermill, a fresh
kernel per notebook) with a budget of two steps per run, into a results
folder of its own (``WEAKSEP_RESULTS``), and checks what a user would look at:
the summary, and that every table's config names the data and the CLAP it was
made with. The kernels import this checkout's ``weaksep`` (``PYTHONPATH``),
whatever the virtual environment's editable install points to.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from weaksep.data.fixtures import write_fixture

REPO = Path(__file__).resolve().parents[1]
TABLES = ("01_two_source", "02_three_source", "03_four_source", "04_semi_supervised", "08_captioned_events")

pytestmark = [
    pytest.mark.slow,  # minutes each: eight notebooks, each in a fresh kernel
    pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make"),
]


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


@pytest.mark.parametrize("layout", ["music", "vggsound"])
def test_make_reproduce_on_a_dataset_in_its_public_layout(tmp_path, layout):
    root = tmp_path / layout
    record = write_fixture(layout, root)  # a few listed files missing and one corrupt: skipped and counted
    results, out = make_reproduce(tmp_path, DATA=root)
    assert "weak" in out  # make ends by printing summary.md
    check_layout_tables(results, root, record)


@pytest.mark.skipif(importlib.util.find_spec("laion_clap") is None, reason="laion_clap is not installed")
def test_make_reproduce_on_audiocaps_with_the_laion_clap_backend(tmp_path):
    """The third layout and the LAION-CLAP path in one study (each study costs minutes)."""
    from laion_fixtures import make_checkpoint, make_tokenizer_dir

    tokenizer, vocab_size = make_tokenizer_dir(tmp_path / "tokenizer")
    checkpoint = tmp_path / "clap.pt"
    make_checkpoint(checkpoint, "HTSAT-tiny", vocab_size)
    root = tmp_path / "audiocaps"
    record = write_fixture("audiocaps", root)
    results, _ = make_reproduce(tmp_path, DATA=root, CLAP_BACKEND="laion", CLAP_CKPT=checkpoint, TOKENIZER=tokenizer)

    check_layout_tables(results, root, record)
    for name, cfg in table_configs(results).items():
        assert cfg["clap"]["backend"] == "laion", name
    assert (results / "notebooks" / "06_try_it.ipynb").exists()
