"""``python -m callgate`` is the ``callgate`` command."""

import sys

from .cli import main

sys.exit(main())
