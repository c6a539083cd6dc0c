"""parley: a private messenger core with self-healing group connections."""

__version__ = "0.1.0"
