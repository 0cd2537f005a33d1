"""``python -m fcnet``: the ``fcnet`` command line (see :mod:`fcnet.cli`)."""

import sys

from fcnet.cli import main

if __name__ == "__main__":
    sys.exit(main())
