import sys

from temporal_siem.cli import main

sys.exit(main())
