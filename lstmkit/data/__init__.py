"""Datasets: finding/downloading the known data files, and Keras-compatible loaders.

Importing this package does no I/O: files are located (``$LSTMKIT_DATA``, then the user cache,
then a verified download) only when a loader or `resolve` is called.
"""

from lstmkit.data.batching import (
    BucketBatchSampler,
    SequenceDataset,
    collate_floats,
    collate_tokens,
    padding_fraction,
)
from lstmkit.data.keras_datasets import (
    decode,
    get_word_index,
    load_imdb,
    load_mnist,
    load_reuters,
    pad_sequences,
)
from lstmkit.data.resolve import (
    ENV_VAR,
    REGISTRY,
    DataFile,
    DataIntegrityError,
    DataNotFoundError,
    DownloadError,
    default_cache_dir,
    download,
    resolve,
    verify_file,
)

__all__ = [
    "ENV_VAR",
    "REGISTRY",
    "BucketBatchSampler",
    "DataFile",
    "DataIntegrityError",
    "DataNotFoundError",
    "DownloadError",
    "SequenceDataset",
    "collate_floats",
    "collate_tokens",
    "decode",
    "default_cache_dir",
    "download",
    "get_word_index",
    "load_imdb",
    "load_mnist",
    "load_reuters",
    "pad_sequences",
    "padding_fraction",
    "resolve",
    "verify_file",
]
