"""``python -m portarun`` runs the ``portarun`` command line."""
from .cli import main

raise SystemExit(main())
