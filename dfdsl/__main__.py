"""`python -m dfdsl`: the command line, as the `dfdsl` script runs it."""

from dfdsl.cli import main

raise SystemExit(main())
