"""``python -m qcmb_parsl``: the ``qcmb-parsl`` command."""

import sys

from .frontend.cli import main

sys.exit(main())
