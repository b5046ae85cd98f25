"""``python -m cname_flow`` runs the command-line interface."""

from cname_flow.cli.main import main

main()
