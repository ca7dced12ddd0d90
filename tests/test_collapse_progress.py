"""An executed notebook keeps each progress bar at its last redraw and no path of the machine,
and nothing else changes."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from weaksep.cli import main
from weaksep.paths import REPO_ROOT
from weaksep.reproduce.collapse_progress import collapse_progress


def _executed_notebook(path):
    redraws = [new_output("stream", name="stderr", text=f"\rweak N=2: {i:3d}%|loss=1.0") for i in range(100)]
    cell = new_code_cell(
        "study.train()",
        outputs=[
            new_output("stream", name="stdout", text="training 1 run\n"),
            *redraws,
            new_output("stream", name="stderr", text="\rweak N=2: 100%|loss=0.5\n"),
            new_output("display_data", data={"text/plain": "<Figure>"}),
        ],
    )
    nbformat.write(new_notebook(cells=[new_code_cell("profile = 'smoke'"), cell]), path)


def test_a_progress_bar_keeps_its_last_redraw_and_every_other_output(tmp_path):
    path = tmp_path / "01_two_source.ipynb"
    _executed_notebook(path)
    before, after = collapse_progress(path)
    assert after < before
    outputs = nbformat.read(path, as_version=4).cells[1].outputs
    assert [(o.output_type, o.get("name"), o.get("text")) for o in outputs] == [
        ("stream", "stdout", "training 1 run\n"),
        ("stream", "stderr", "weak N=2: 100%|loss=0.5\n"),
        ("display_data", None, None),
    ]


def test_a_file_that_is_not_a_notebook_is_named_and_left_as_it_was(tmp_path, capsys):
    path = tmp_path / "summary.ipynb"
    path.write_text("profile,sdr\n")
    with pytest.raises(ValueError, match="summary.ipynb: not a Jupyter notebook"):
        collapse_progress(path)
    assert main(["collapse-progress", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("weaksep: error: ") and "summary.ipynb: not a Jupyter notebook" in err
    assert path.read_text() == "profile,sdr\n"
    assert list(tmp_path.iterdir()) == [path]


def test_a_warning_names_its_file_under_the_checkout_as_repo(tmp_path):
    warning = f"{REPO_ROOT}/weaksep/clap/pretrain.py:125: UserWarning: Converting a tensor\n"
    error = new_output("error", ename="ValueError", evalue="bad", traceback=[f"File {REPO_ROOT}/weaksep/x.py"])
    cell = new_code_cell("study.train()", outputs=[new_output("stream", name="stderr", text=warning), error])
    path = tmp_path / "07_ablations.ipynb"
    nbformat.write(new_notebook(cells=[cell]), path)
    collapse_progress(path)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert outputs[0].text == "<repo>/weaksep/clap/pretrain.py:125: UserWarning: Converting a tensor\n"
    assert outputs[1].traceback == ["File <repo>/weaksep/x.py"]
    assert str(REPO_ROOT) not in path.read_text()
