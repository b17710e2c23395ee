import sys

from sod100k.cli import main

sys.exit(main())
