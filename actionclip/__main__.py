import sys

from actionclip.cli import main

sys.exit(main())
