"""The compose file's ``setup`` service: create the demo bucket on MinIO if it is missing.

Run once, after MinIO is healthy and before ``aifdata demo`` starts. The endpoint
and credentials come from ``MINIO_ENDPOINT`` (``host:port``, no scheme),
``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``.
"""

from __future__ import annotations

import os

from minio import Minio
from minio.error import S3Error

BUCKET = "aifdata-demo"  # aifdata._demo.BUCKET (tests/test_compose.py checks they agree)


def ensure_bucket(
    endpoint: str,
    access_key: str,
    secret_key: str,
    bucket: str = BUCKET,
    secure: bool = False,
) -> bool:
    """Create ``bucket`` unless it exists; True if this call created it."""
    client = Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region="us-east-1",
    )
    if client.bucket_exists(bucket_name=bucket):
        return False
    try:
        client.make_bucket(bucket_name=bucket)
    except S3Error as err:  # made by someone else since the check
        if err.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        return False
    return True


def main() -> None:
    endpoint = os.environ.get("MINIO_ENDPOINT", "minio:9000")
    created = ensure_bucket(
        endpoint, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    )
    print(f"bucket {BUCKET} {'created' if created else 'already there'} on {endpoint}")


if __name__ == "__main__":
    main()
