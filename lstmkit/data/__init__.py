"""Datasets: finding/downloading the known data files, Keras-compatible loaders, and the
tokenizers for your own texts (``tokenizers`` / ``sentencepiece``, their encoded ids cached).

Importing this package does no I/O: files are located (``$LSTMKIT_DATA``, then the user cache,
then a verified download) only when a loader or `resolve` is called; the tokenizer libraries are
imported when a tokenizer is trained or loaded.
"""

from lstmkit.data.batching import (
    BucketBatchSampler,
    SequenceDataset,
    collate_floats,
    collate_tokens,
    padding_fraction,
)
from lstmkit.data.encode_cache import EncodedSplits, encode_splits
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
from lstmkit.data.tokenize import TextTokenizer, train_tokenizer

__all__ = [
    "ENV_VAR",
    "REGISTRY",
    "BucketBatchSampler",
    "DataFile",
    "DataIntegrityError",
    "DataNotFoundError",
    "DownloadError",
    "EncodedSplits",
    "SequenceDataset",
    "TextTokenizer",
    "collate_floats",
    "collate_tokens",
    "decode",
    "default_cache_dir",
    "download",
    "encode_splits",
    "get_word_index",
    "load_imdb",
    "load_mnist",
    "load_reuters",
    "pad_sequences",
    "padding_fraction",
    "resolve",
    "train_tokenizer",
    "verify_file",
]
