"""``python -m rlrun`` is the same as the ``rlrun`` console script."""

from rlrun.cli import main

main()
