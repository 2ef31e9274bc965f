import sys

from dlcamp.cli.main import main

sys.exit(main())
