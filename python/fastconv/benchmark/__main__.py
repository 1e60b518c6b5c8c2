"""`python -m fastconv.benchmark` runs `fastconv bench`."""

import sys

from .cli import main

sys.exit(main())
