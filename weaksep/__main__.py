"""``python -m weaksep``: the ``weaksep`` command (see :mod:`weaksep.cli`)."""

import sys

from .cli import main

sys.exit(main())
