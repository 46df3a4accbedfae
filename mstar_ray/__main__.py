"""`python -m mstar_ray ...` is the `mstar` command."""

import sys

from mstar_ray.cli import main

sys.exit(main())
