"""Shared fixtures: a smoke-profile study in a temporary cache, with a quickly pretrained default CLAP."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    from weaksep.reproduce.study import Study

    root = tmp_path_factory.mktemp("weaksep")
    study = Study("smoke", data_root=root / "cache", results_dir=root / "results", progress=False)
    study.clap()  # pretrains the default CLAP for the smoke profile (a few seconds)
    return study
