"""MNIST from ../shared/data/mnist (IDX, gz) and the project's split (the same rows as
src/splits.ts, which the benchmarks, tests and presets use): rows 0..6999 train the teacher (and
the with-data baseline), 7000..8499 are the validation rows (every choice is made there),
8500..9999 the report rows (only reported figures)."""
import gzip
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_DIR = os.environ.get("DFKD_MNIST", os.path.join(ROOT, "..", "shared", "data", "mnist"))
MEAN, STD = 0.1307, 0.3081
TRAIN_END = 7000  # src/splits.ts MNIST_SPLITS.teacher.end
VAL_END = 8500    # src/splits.ts MNIST_SPLITS.val.end; the report rows follow


def _idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(normalize=True):
    """Returns (x [N,1,28,28] float32, y [N] int64) for all 10,000 images."""
    x = _idx(os.path.join(MNIST_DIR, "t10k-images-idx3-ubyte.gz")).astype(np.float32)[:, None] / 255.0
    y = _idx(os.path.join(MNIST_DIR, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    if normalize:
        x = (x - MEAN) / STD
    return x, y


def split(normalize=True):
    x, y = load(normalize)
    return (x[:TRAIN_END], y[:TRAIN_END]), (x[TRAIN_END:], y[TRAIN_END:])
