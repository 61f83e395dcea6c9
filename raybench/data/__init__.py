"""The data sets: Omniglot (located, verified by content, preprocessed once into a fast
cache), a folder of classes (``raybench.data.folder``), read and cached the same way, and
CIFAR-FS and FC100 from a local CIFAR-100 binary archive (``raybench.data.cifar``)."""

from raybench.data.cifar import load_cifar
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
    "load_cifar",
    "load_folder",
    "load_omniglot",
]
