"""``python -m gotune`` is the ``gotune`` command."""

import sys

from gotune.cli import main

sys.exit(main())
