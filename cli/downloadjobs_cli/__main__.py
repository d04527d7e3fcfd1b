import sys

from downloadjobs_cli import main

sys.exit(main())
