"""``python -m golden.codec``: the codec's command line (``golden.codec.cli``)."""

from golden.codec.cli import main

raise SystemExit(main())
