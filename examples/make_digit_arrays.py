"""Write a numeric-sequence data set for seed 004's stacked model: handwritten digits read row by
row, each image a sequence of 28 time steps of 28 pixel values, labelled 1 when the digit is 5 or
more and 0 otherwise (a real signal in real data, balanced: 49% / 51%).

    python examples/make_digit_arrays.py --out data/digits-ge5.npz [--n 20000]

The file holds ``x`` (N, 28, 28) uint8 pixels and ``y`` (N,) int64 labels -- the layout
``[data.arrays]`` reads (see the packaged recipe stacked-seed004: lstmkit recipes --path). The images are the first N of
MNIST's training set (``lstmkit.data.load_mnist``, data resolved as everywhere).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lstmkit.data.keras_datasets import load_mnist


def make(out: Path, n: int = 20000) -> Path:
    """Write ``out`` (.npz, x and y) from the first ``n`` MNIST training images."""
    (x_train, y_train), _ = load_mnist()
    if not 1 <= n <= len(x_train):
        raise ValueError(f"--n must be in 1..{len(x_train)}, got {n}")
    x = x_train[:n]
    y = (y_train[:n] >= 5).astype(np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez_compressed(tmp, x=x, y=y)
    tmp.replace(out)
    return out


def main() -> None:
    """Command line: --out FILE [--n N]."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/digits-ge5.npz"))
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    path = make(args.out, args.n)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
