"""The ``cryophase`` command line: thin typer shells over library functions."""
