"""Command line for developers and operators: `python -m tillit --help`."""
