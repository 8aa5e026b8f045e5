"""curate: turn raw image collections into clean, trustworthy training sets."""

__version__ = "0.1.0"
