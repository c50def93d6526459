"""The version of lstmkit (one place: the package, bundles, the API and the studio read it)."""

__version__ = "0.1.0"
