"""``python -m serving``: the command-line interface."""

from serving.cli import main

raise SystemExit(main())
