"""Allow `python -m txpatterns`."""

from txpatterns.cli import main

main()
