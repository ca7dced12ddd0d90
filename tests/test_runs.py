"""Run identity: what makes a committed model reusable, and what makes it stale."""

import json

import pytest

from weaksep.paths import REPO_ROOT
from weaksep.profiles import get_profile
from weaksep.runs import CONFIRMED_CODE, TRAINING_SEMANTICS, RunConfig, code_version, same_run

CONVERGED_RUNS = REPO_ROOT / "results" / "converged" / "runs"


def test_training_code_change_is_decided():
    """Fails on any change to the hashed training code until someone decides what it is."""
    assert code_version() == CONFIRMED_CODE, (
        f"the training code changed (code_version() {code_version()} != CONFIRMED_CODE {CONFIRMED_CODE}). "
        "If runs trained now differ from those trained before, set weaksep.runs.TRAINING_SEMANTICS to "
        f"{code_version()!r} (every model is then retrained); if not (a refactor, a move, a new setting whose "
        f"saved-config default keeps the old behaviour), set CONFIRMED_CODE to {code_version()!r}."
    )


def _today(saved: dict, **changes) -> RunConfig:
    """The config today's study builds for the run ``saved`` describes (profile, semantics, candidate set)."""
    profile = get_profile(saved["profile"]["name"])
    fields = {**saved, "profile": profile.to_dict(), "code": TRAINING_SEMANTICS}
    fields["contrastive_group"] = profile.contrastive_group
    return RunConfig(**{**fields, **changes})


@pytest.mark.parametrize("run", ["unsup_n2", "sup_n3", "sup_at_5pct_n2_s1", "unsup_n2_events"])
def test_committed_unsup_and_sup_runs_keep_their_identity(run):
    saved = json.loads((CONVERGED_RUNS / run / "config.json").read_text())
    assert same_run(saved, _today(saved))
    assert same_run(saved, _today(saved, contrastive_group=8))  # the setting is irrelevant to them


def test_a_saved_weak_config_without_the_setting_was_trained_with_groups_of_one():
    saved = json.loads((CONVERGED_RUNS / "weak_n2_group1" / "config.json").read_text())
    legacy = {k: v for k, v in saved.items() if k != "contrastive_group"}
    assert same_run(legacy, _today(saved, contrastive_group=1))
    assert not same_run(legacy, _today(saved))  # the profiles' default, the authors' 2: trained again
    assert not same_run({**legacy, "contrastive_group": 2}, _today(saved, contrastive_group=8))


def test_contrastive_group_must_be_positive():
    saved = json.loads((CONVERGED_RUNS / "weak_n2_group1" / "config.json").read_text())
    with pytest.raises(ValueError, match="contrastive_group"):
        _today(saved, contrastive_group=0)
