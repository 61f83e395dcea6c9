"""The data sets: Omniglot (located, verified by content, preprocessed once into a fast
cache) and a folder of classes (``raybench.data.folder``), read and cached the same way."""

from raybench.data.folder import FolderDataError, FolderLayout, ImageClasses, load_folder
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
    "FolderDataError",
    "FolderLayout",
    "ImageClasses",
    "Location",
    "OmniglotCheck",
    "OmniglotImages",
    "SplitCounts",
    "cache_dir",
    "check_omniglot",
    "load_folder",
    "load_omniglot",
]
