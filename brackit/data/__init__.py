"""Offline datasets: the container, validation, on-device sampling and file formats.

A leaf of the package: it imports no algorithm, and datasets built by the BRAC protocol come from
``brackit.protocol`` (``brackit.protocol.build.build``).
"""

from brackit.data.dataset import DatasetCard, Episode, OfflineDataset, arrays_from_episodes, make_dataset
from brackit.data.formats import FORMATS, detect_format, load_dataset, save_dataset
from brackit.errors import DatasetError

__all__ = [
    "FORMATS",
    "DatasetCard",
    "DatasetError",
    "Episode",
    "OfflineDataset",
    "arrays_from_episodes",
    "detect_format",
    "load_dataset",
    "make_dataset",
    "save_dataset",
]
