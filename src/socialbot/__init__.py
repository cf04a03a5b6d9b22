"""socialbot: cross-post approved press releases, exactly once per network."""

__version__ = "0.2.0"
