"""``python -m splinescope``: the command line (see ``splinescope --help``)."""
import sys

from splinescope.render.cli import main

sys.exit(main())
