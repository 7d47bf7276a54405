"""`python -m service.cli`: the same as the `account-deletion` command."""

import sys

from service.cli import main

sys.exit(main())
