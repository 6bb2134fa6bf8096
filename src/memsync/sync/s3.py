"""S3-compatible storage as a remote (AWS S3, Cloudflare R2, MinIO, Backblaze B2).

Credentials come from boto3's usual chain (environment, shared profile, instance role);
`s3://bucket/prefix?endpoint=https://…&profile=…&region=…` names the rest. Creating an
object uses `If-None-Match: *` and replacing one `If-Match: <etag>`, so two devices
cannot overwrite each other's writes unseen where the store supports conditional
writes (AWS S3, R2, MinIO do); the sync protocol stays safe where it does not.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

from memsync.errors import RemoteError, RemoteUnreachable
from memsync.sync.remote import Blob, Conflict, Remote, check_name

__all__ = ["S3Remote"]


def _boto3() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise RemoteError(
            "S3 remotes need boto3: pip install 'memsync[s3]' (or pip install boto3)"
        ) from None
    return boto3, Config


class S3Remote(Remote):
    """Objects under `prefix` in `bucket`, through a boto3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str, url: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = url

    @classmethod
    def from_url(cls, url: str) -> S3Remote:
        boto3, config = _boto3()
        parsed = urlparse(url)
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        try:
            session = boto3.session.Session(profile_name=options.get("profile"))
            client = session.client(
                "s3",
                endpoint_url=options.get("endpoint"),
                region_name=options.get("region") or session.region_name or "us-east-1",
                config=config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=60,
                ),
            )
        except Exception as exc:  # botocore raises many kinds for a bad profile
            raise RemoteError(f"cannot set up S3 for {url}: {exc}") from None
        return cls(client, parsed.netloc, parsed.path, url)

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _fail(self, exc: Exception, what: str) -> RemoteError:
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            return RemoteError(
                f"S3 {self.url}: no credentials (set AWS_ACCESS_KEY_ID or a profile)"
            )
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "?")
            if code in (
                "NoSuchBucket",
                "AccessDenied",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
            ):
                return RemoteError(f"S3 {self.url}: {what} refused: {code}")
            return RemoteUnreachable(f"S3 {self.url}: {what} failed: {code}")
        return RemoteUnreachable(f"S3 {self.url}: {what} failed: {exc}")

    def _code(self, exc: Exception) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def get(self, name: str) -> Blob | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
            return Blob(answer["Body"].read(), str(answer["ETag"]))
        except Exception as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._fail(exc, "reading") from None

    def create(self, name: str, data: bytes) -> bool:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=data, IfNoneMatch="*"
            )
        except Exception as exc:
            if self._code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise self._fail(exc, "writing") from None
        return True

    def replace(self, name: str, data: bytes, if_match: str | None) -> None:
        extra = {"IfMatch": if_match} if if_match is not None else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data, **extra)
        except Exception as exc:
            # If-Match on an object that is gone answers 404 (NoSuchKey): it changed too.
            conflict = ("PreconditionFailed", "412", "ConditionalRequestConflict", "NoSuchKey")
            if self._code(exc) in conflict:
                raise Conflict(f"object {name} changed while it was being replaced") from None
            raise self._fail(exc, "writing") from None

    def list(self, prefix: str) -> list[str]:
        names: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                names += [str(o["Key"])[len(self.prefix) :] for o in page.get("Contents", ())]
        except Exception as exc:
            raise self._fail(exc, "listing") from None
        return sorted(names)

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:
            raise self._fail(exc, "deleting") from None
