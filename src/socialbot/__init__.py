"""socialbot: cross-post approved press releases, exactly once per network."""

__version__ = "0.1.0"
