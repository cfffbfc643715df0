"""The catalog: datasets, versions, files, checksums and replicas in one SQLite file, or
in a PostgreSQL database for a site (``Catalog("postgresql://...")``)."""

from .._streams import CHECKSUM_ALGORITHM
from ._catalog import Catalog, named_catalog, open_dataset, split_ref
from ._lineage import LineageNode, RunRecord
from ._openlineage import events_for as openlineage_events_of
from ._openlineage import send as send_openlineage
from ._policy import (
    PRIVILEGES,
    Grant,
    Principal,
    acting_as,
    current_principal,
    current_user,
)
from ._records import Dataset, FileRecord
from ._search import SearchHit
from ._store import catalogs_opened, filesystem_type, is_network_filesystem
from ._verify import ReplicaProblem, VerifyReport

__all__ = [
    "CHECKSUM_ALGORITHM",
    "PRIVILEGES",
    "Catalog",
    "Dataset",
    "FileRecord",
    "Grant",
    "LineageNode",
    "Principal",
    "ReplicaProblem",
    "RunRecord",
    "SearchHit",
    "VerifyReport",
    "acting_as",
    "catalogs_opened",
    "current_principal",
    "current_user",
    "filesystem_type",
    "is_network_filesystem",
    "named_catalog",
    "open_dataset",
    "openlineage_events_of",
    "send_openlineage",
    "split_ref",
]
