"""Object access by URI: `file:///abs/path` and `s3://bucket/key` (boto3, endpoint configurable).

The lake stores a `storage_uri` per file; everything that reads file bytes (ingest, the API's
content route, job chunks) goes through `Storage`. Managed storage (`METALAKE_MANAGED_STORAGE_URL`)
is where uploaded bytes and model bundles are written, content-addressed by SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlparse

from engine.errors import InvalidPath, NoManagedStorage, NotFound, StorageError

# Callers take the URI helpers from here too.
from engine.uris import file_uri as file_uri
from engine.uris import local_path as local_path
from engine.uris import split_s3 as split_s3

if TYPE_CHECKING:
    from engine.config import Settings


def hash_stream(stream: IO[bytes], sink: IO[bytes] | None = None) -> tuple[str, int]:
    """(sha256 hex, size) of a stream read to its end, copying it into `sink` if given."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest(), size


@dataclass(frozen=True)
class S3Object:
    uri: str
    key: str
    size: int


class Storage:
    """Reads and writes objects by URI. One instance per process, built from `Settings`."""

    def __init__(
        self, *, s3_endpoint_url: str | None, s3_region: str, managed_url: str | None
    ) -> None:
        self.s3_endpoint_url = s3_endpoint_url
        self.s3_region = s3_region
        self.managed_url = managed_url.rstrip("/") if managed_url else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls(
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_region=settings.s3_region,
            managed_url=settings.managed_storage_url,
        )

    @cached_property
    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint_url,
            region_name=self.s3_region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
        )

    # -- reading ---------------------------------------------------------------------------
    def read_bytes(self, uri: str) -> bytes:
        with self.open(uri) as handle:
            return handle.read()

    def open(self, uri: str) -> IO[bytes]:
        scheme = urlparse(uri).scheme
        if scheme == "file":
            path = local_path(uri)
            try:
                return path.open("rb")
            except FileNotFoundError as exc:
                raise NotFound(f"The file behind {uri} is gone from storage.", uri=uri) from exc
            except OSError as exc:
                raise StorageError(f"Cannot read {uri}: {exc.strerror}", uri=uri) from exc
        if scheme == "s3":
            bucket, key = split_s3(uri)
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise NotFound(f"{uri} does not exist.", uri=uri) from exc
                raise StorageError(f"S3 refused to read {uri}: {exc}", uri=uri) from exc
            except BotoCoreError as exc:
                raise StorageError(f"S3 is unreachable reading {uri}: {exc}", uri=uri) from exc
            return body  # type: ignore[no-any-return]
        raise InvalidPath(f"Unsupported storage URI scheme in {uri!r}; use file:// or s3://.")

    def list_s3(self, uri: str) -> Iterator[S3Object]:
        """Objects under an `s3://bucket/prefix`, recursively."""
        bucket, prefix = split_s3(uri)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield S3Object(
                        uri=f"s3://{bucket}/{item['Key']}", key=item["Key"], size=int(item["Size"])
                    )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "NoSuchBucket":
                raise InvalidPath(f"The bucket {bucket!r} does not exist.", uri=uri) from exc
            raise StorageError(f"S3 refused to list {uri}: {exc}", uri=uri) from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 is unreachable listing {uri}: {exc}", uri=uri) from exc

    # -- writing (managed storage) ------------------------------------------------------------
    def put_content_addressed(
        self, source: IO[bytes], *, namespace: str, suffix: str = ""
    ) -> tuple[str, str, int]:
        """Copy a stream into managed storage under `<namespace>/<sha256><suffix>`.

        Returns (uri, sha256, size). Writing the same bytes twice yields the same URI.
        """
        if not self.managed_url:
            raise NoManagedStorage()
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            sha, size = hash_stream(source, tmp)
        tmp_path = Path(tmp.name)
        try:
            uri = self._put_file(tmp_path, f"{namespace}/{sha[:2]}/{sha}{suffix}")
        finally:
            tmp_path.unlink(missing_ok=True)
        return uri, sha, size

    def delete(self, uri: str) -> None:
        """Remove the object at `uri` (file:// or s3://); one already gone is no error."""
        scheme = urlparse(uri).scheme
        if scheme == "file":
            try:
                local_path(uri).unlink(missing_ok=True)
            except OSError as exc:
                raise StorageError(f"Cannot remove {uri}: {exc.strerror}", uri=uri) from exc
            return
        if scheme == "s3":
            bucket, key = split_s3(uri)
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                self.s3.delete_object(Bucket=bucket, Key=key)
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"Could not remove {uri}: {exc}", uri=uri) from exc
            return
        raise InvalidPath(f"Unsupported storage URI scheme in {uri!r}; use file:// or s3://.")

    def _put_file(self, path: Path, key: str) -> str:
        assert self.managed_url is not None
        scheme = urlparse(self.managed_url).scheme
        if scheme == "file":
            target = local_path(self.managed_url) / key
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                # A unique temporary name: concurrent writers of the same bytes each finish
                # their own copy and the atomic rename makes the last one win harmlessly.
                fd, partial_name = tempfile.mkstemp(dir=target.parent, suffix=".partial")
                os.close(fd)
                partial = Path(partial_name)
                try:
                    shutil.copyfile(path, partial)
                    partial.replace(target)
                finally:
                    partial.unlink(missing_ok=True)
            return file_uri(target)
        if scheme == "s3":
            bucket, prefix = split_s3(self.managed_url)
            full_key = f"{prefix}/{key}" if prefix else key
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                self.s3.upload_file(str(path), bucket, full_key)
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"Could not write s3://{bucket}/{full_key}: {exc}") from exc
            return f"s3://{bucket}/{full_key}"
        raise InvalidPath(
            f"METALAKE_MANAGED_STORAGE_URL must be file:// or s3://, not {self.managed_url!r}"
        )
