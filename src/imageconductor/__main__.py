"""``python -m imageconductor``: the same as the ``imageconductor`` command."""

import sys

from imageconductor.cli import main

sys.exit(main())
