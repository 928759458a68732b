"""``python -m invkit`` (and ``torchrun -m invkit``): the command line."""

import sys

from invkit.cli.main import main

sys.exit(main())
