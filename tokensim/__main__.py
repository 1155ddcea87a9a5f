"""``python -m tokensim`` runs the command line."""

import sys

from tokensim.cli import main

sys.exit(main())
