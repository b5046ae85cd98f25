"""The command line: every command, rendering, exit codes, logging set-up and the demo.

:func:`main` is the ``cname-flow`` console script (``[project.scripts]``) and what
``python -m cname_flow`` runs.
"""

from cname_flow.cli.main import main

__all__ = ["main"]
