"""`python -m izgens.cli`: the `izgens` command."""

from izgens.cli.parser import main

raise SystemExit(main())
