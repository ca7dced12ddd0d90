"""The study the notebooks run, beside the library: the ``Study`` that trains and evaluates every run
(``study``), the notebooks' helpers (``notebook``, ``listening``), the result tables (``tables``),
the paper's claims beside ours (``summary``), the figures (``plots``), the ablations (``ablations``,
``ablation_runs``) and the clean-up of executed notebooks (``collapse_progress``).

The library (every other package of ``weaksep`` but ``cli`` and ``tools``) never imports it
(tests/test_layout.py)."""
