"""Omniglot: locate, verify by content, preprocess once into a fast cache."""

from raybench.data.omniglot import (
    DataContentError,
    DataNotFoundError,
    Location,
    OmniglotCheck,
    OmniglotImages,
    SplitCounts,
    cache_dir,
    check_omniglot,
    load_omniglot,
)

__all__ = [
    "DataContentError",
    "DataNotFoundError",
    "Location",
    "OmniglotCheck",
    "OmniglotImages",
    "SplitCounts",
    "cache_dir",
    "check_omniglot",
    "load_omniglot",
]
