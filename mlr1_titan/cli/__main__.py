"""``python -m mlr1_titan.cli`` = ``mlr1`` (for launching the tools from a given interpreter)."""

import sys

from mlr1_titan.cli import main

sys.exit(main())
