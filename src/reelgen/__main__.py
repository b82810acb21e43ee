"""`python -m reelgen`: the same CLI as the `reelgen` console script (torchrun -m reelgen worker ...)."""

import sys

from reelgen.cli import main

sys.exit(main())
