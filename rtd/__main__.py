"""`python -m rtd`: the same as the `rtd` command."""

import sys

from rtd.cli import main

sys.exit(main())
