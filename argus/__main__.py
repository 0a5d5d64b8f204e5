"""``python -m argus`` is the ``argus`` command."""

from .cli import main

raise SystemExit(main())
