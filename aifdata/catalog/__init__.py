"""The catalog: datasets, versions, files, checksums and replicas in one SQLite file."""

from ._catalog import Catalog, Dataset, FileRecord, current_user, open_dataset
from ._ingest import CHECKSUM_ALGORITHM
from ._search import SearchHit
from ._store import filesystem_type, is_network_filesystem

__all__ = [
    "CHECKSUM_ALGORITHM",
    "Catalog",
    "Dataset",
    "FileRecord",
    "SearchHit",
    "current_user",
    "filesystem_type",
    "is_network_filesystem",
    "open_dataset",
]
