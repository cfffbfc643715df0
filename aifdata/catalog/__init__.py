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
from ._tokens import (
    ApiToken,
    IssuedToken,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
    verify_token,
)
from ._upload_claims import claim_upload, record_upload, release_upload
from ._verify import ReplicaProblem, VerifyReport

__all__ = [
    "CHECKSUM_ALGORITHM",
    "PRIVILEGES",
    "ApiToken",
    "Catalog",
    "Dataset",
    "FileRecord",
    "Grant",
    "IssuedToken",
    "LineageNode",
    "Principal",
    "ReplicaProblem",
    "RunRecord",
    "SearchHit",
    "VerifyReport",
    "acting_as",
    "authenticate",
    "catalogs_opened",
    "claim_upload",
    "create_token",
    "current_principal",
    "current_user",
    "filesystem_type",
    "is_network_filesystem",
    "list_tokens",
    "named_catalog",
    "open_dataset",
    "openlineage_events_of",
    "record_upload",
    "release_upload",
    "revoke_token",
    "send_openlineage",
    "split_ref",
    "verify_token",
]
