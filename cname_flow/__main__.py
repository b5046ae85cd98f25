"""``python -m cname_flow`` runs the command-line interface."""

from cname_flow.cli import main

main()
