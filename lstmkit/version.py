"""The version of lstmkit, read from the installed package's metadata: ``pyproject.toml``'s
``[project] version`` is the one place it is written (the package, bundles, the API, the studio
and ``lstmkit --version`` read it here)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lstmkit")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
