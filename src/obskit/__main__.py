"""``python -m obskit``: the same as the ``obskit`` command."""

import sys

from obskit._cli import main

sys.exit(main())
