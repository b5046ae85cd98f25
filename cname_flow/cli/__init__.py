"""The command line: every command, rendering, exit codes, logging set-up and the demo."""
