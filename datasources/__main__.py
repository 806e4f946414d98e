"""``python -m datasources``: the same as the ``datasources`` console script."""

from __future__ import annotations

from datasources.cli import main

raise SystemExit(main())
