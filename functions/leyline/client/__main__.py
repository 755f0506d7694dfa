"""`python -m leyline.client` works like the `leyline` console script."""

from leyline.client.cli import main

raise SystemExit(main())
