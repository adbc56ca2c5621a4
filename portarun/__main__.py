"""``python -m portarun`` runs the ``portarun`` command line."""
from ._cli.main import main

raise SystemExit(main())
