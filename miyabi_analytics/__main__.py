"""``python -m miyabi_analytics``: the same as the ``miyabi-analytics`` command."""

from miyabi_analytics.cli import main

raise SystemExit(main())
