"""``python -m sorter ...`` = the ``sorter`` command."""
import sys

from sorter.cli import main

sys.exit(main())
