"""``python -m imageconductor.cli`` (e.g. under ``accelerate launch -m imageconductor.cli train stage ...``)."""

import sys

from imageconductor.cli.entry import main

sys.exit(main())
