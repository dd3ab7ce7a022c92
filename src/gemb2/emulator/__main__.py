"""``python -m gemb2.emulator``."""

import sys

from .cli import main

sys.exit(main())
