"""`python -m kvision` is the same as the `kvision` command."""

import sys

from kvision.cli import main

sys.exit(main())
