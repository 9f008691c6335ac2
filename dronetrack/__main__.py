import sys

from dronetrack.cli import main

sys.exit(main())
