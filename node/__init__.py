"""meshgate's gateway node: everything one process serves."""

__version__ = "0.1.0"
