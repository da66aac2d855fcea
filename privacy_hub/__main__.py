"""`python -m privacy_hub`: the `privacy-hub` command, every group included."""

from privacy_hub.cli import main

main()
