"""What the study costs, measured: benchmarks of the data path, the training step and separation
(``bench``, ``bench_step``, ``bench_data``), a profile's steps on this machine's device
(``gpu_check``) and a cheaper training budget held to the profile's seed spread (``budget``).

The library never imports it (tests/test_layout.py)."""
