"""Typer command-line interface: one small module per subcommand; each parses and delegates."""
