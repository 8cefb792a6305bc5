import sys

from lrjax.cli import main

sys.exit(main())
