"""Using a trained separator: separating a waveform of any length, rate and channel count
(``waveform``, with ``overlap_add``), separating files and folders (``separate``, with ``audio_files``),
and how far to trust the result (``confidence``)."""
