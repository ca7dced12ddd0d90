"""Keep, of each progress bar in an executed notebook, only what a terminal would show, and
no path of the machine that ran it.

A text progress bar redraws itself by writing a carriage return and the new bar. The
notebook keeps every redraw: about 0.9 MB per training notebook, because the training
bar's loss redraws it at every step. nbconvert's CoalesceStreamsPreprocessor merges a
cell's consecutive stream outputs and drops the text that a carriage return overwrites;
``make reproduce`` runs it on each notebook that papermill executes. A Python warning
names the file that raised it with its absolute path; the checkout's path is written
``<repo>`` instead, as :func:`weaksep.paths.portable_path` writes it in every result.

    weaksep collapse-progress results/notebooks/01_two_source.ipynb ...
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

from ..io import atomic_write_text
from ..paths import REPO_ROOT


def _without_machine_paths(notebook: nbformat.NotebookNode) -> None:
    """Write the checkout's path as ``<repo>`` in every stream and error output of ``notebook``, in place."""
    root = str(REPO_ROOT)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = output["text"].replace(root, "<repo>")
            elif output.get("output_type") == "error":
                output["traceback"] = [line.replace(root, "<repo>") for line in output["traceback"]]


def collapse_progress(path: str | Path) -> tuple[int, int]:
    """Rewrite the notebook at ``path`` with each progress bar at its last redraw and the
    checkout's path written ``<repo>``.

    Returns the file's size in bytes before and after. The file is replaced
    atomically, so an interrupted call leaves the notebook as it was.
    """
    path = Path(path)
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # nbformat raises several kinds for a file that is not a notebook
        raise ValueError(f"{path}: not a Jupyter notebook ({error})") from error
    before = path.stat().st_size
    notebook, _ = CoalesceStreamsPreprocessor().preprocess(notebook, {})
    _without_machine_paths(notebook)
    atomic_write_text(path, nbformat.writes(notebook) + "\n")
    return before, path.stat().st_size
