"""`python -m fastconv` runs the fastconv command line."""

import sys

from .cli import main

sys.exit(main())
