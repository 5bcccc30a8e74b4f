"""``python -m pointctl``."""

from pointctl.cli import main

main()
