"""Shared plotting plumbing: every PNG lstmkit writes goes through :func:`save_png` (Agg backend,
written to a temporary file and renamed, so a reader never sees half a picture)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstmkit.files import atomic_write_with


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path, dpi: int = 100) -> None:
    """Write ``fig`` to ``path`` atomically and close it."""
    plt = pyplot()
    try:
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), ".tmp.png")
    finally:
        plt.close(fig)
