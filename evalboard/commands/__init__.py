"""The ``evalboard`` subcommands, grouped by what they touch; ``evalboard.cli`` dispatches."""
