import sys

from scorelib.cli import main

sys.exit(main())
