"""``python -m lstmkit ...``: the same as the ``lstmkit`` command (:func:`lstmkit.cli.main`)."""

import sys

from lstmkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
