"""Remote URLs: checked, put in one canonical form, and turned into remotes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from memsync.errors import RemoteError
from memsync.sync.remote import FolderRemote, Remote

__all__ = ["normalize_url", "open_remote"]


def normalize_url(url: str) -> str:
    """The canonical form of a remote URL, checked; `RemoteError` if it is not one."""
    text = url.strip()
    if not text:
        raise RemoteError("a remote URL is needed: a folder path, file:///path or s3://bucket")
    parsed = urlparse(text)
    if parsed.scheme in ("", "file"):
        raw = unquote(parsed.path) if parsed.scheme == "file" else text
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise RemoteError(f"a file URL names a local folder, not host {parsed.netloc!r}")
        return Path(raw).expanduser().resolve().as_uri()
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise RemoteError("an S3 URL names a bucket: s3://bucket/prefix")
        for key in parse_qs(parsed.query):
            if key not in ("endpoint", "profile", "region"):
                raise RemoteError(f"unknown S3 option {key!r} (endpoint, profile, region)")
        return text
    if parsed.scheme == "evm":
        from memsync.sync.evm import normalize_evm_url

        return normalize_evm_url(text, normalize_url)
    raise RemoteError(
        f"unsupported remote {text!r}: use a folder, file:///path, s3://bucket or evm://…"
    )


def open_remote(url: str) -> Remote:
    """The remote a stored URL names (see `normalize_url`)."""
    canonical = normalize_url(url)
    parsed = urlparse(canonical)
    if parsed.scheme == "s3":
        from memsync.sync.s3 import S3Remote  # boto3 is imported only for S3

        return S3Remote.from_url(canonical)
    if parsed.scheme == "evm":
        from memsync.sync.evm import EvmRemote  # web3 is imported only for the chain

        return EvmRemote.from_url(canonical, open_remote)
    return FolderRemote(Path(unquote(parsed.path)))
