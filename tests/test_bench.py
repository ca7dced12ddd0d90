"""``weaksep bench --whole-runs``: whole training runs timed beside another checkout's."""

import re

import pytest

from weaksep.paths import REPO_ROOT
from weaksep.tools.bench import time_whole_runs


def test_whole_runs_timed_beside_another_checkout(smoke_study, monkeypatch, capsys):
    # Both sides are this checkout here; make bench points "before" at the commit the speed work started from.
    monkeypatch.setenv("WEAKSEP_CACHE", str(smoke_study.cache))
    monkeypatch.setenv("WEAKSEP_RESULTS", str(smoke_study.results.parent))
    assert time_whole_runs(["unsup:2"], "smoke", REPO_ROOT) == 0
    out = capsys.readouterr().out
    steps = smoke_study.profile.steps
    line = re.search(rf"unsup N=2: now +(\d+) s \({steps} steps budget\) \| before +(\d+) s \({steps} steps\)", out)
    assert line, out
    assert re.search(r"all: now \d+ s, before \d+ s, now/before \d+\.\d\d", out)


def test_whole_runs_name_a_malformed_cell():
    with pytest.raises(SystemExit, match="'weak2' is not REGIME:N"):
        time_whole_runs(["weak2"], "smoke", None)
