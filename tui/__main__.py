"""``python -m kvision_tui``: the same as the ``kvision-tui`` command."""

import sys

from .app import main

sys.exit(main())
