"""``python -m gemb2.testing.emulator``."""

import sys

from gemb2.testing.emulator.cli import main

sys.exit(main())
