"""The S3 remote against a real S3-compatible server on loopback (moto's server mode, a
separate process started here), through boto3 as a user's machine would talk to AWS S3,
R2 or MinIO: conditional writes, listing, two devices, and nothing readable stored."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")

from conftest import create_vault, restore_vault  # noqa: E402
from memsync.errors import RemoteError  # noqa: E402
from memsync.sync.remote import Conflict  # noqa: E402
from memsync.sync.urls import open_remote  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"b{time.monotonic_ns()}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}/vault?endpoint={s3_endpoint}"


def test_the_protocol_on_a_real_server(bucket: str) -> None:
    remote = open_remote(bucket)
    name = "c/" + "ab" * 20
    assert remote.get(name) is None
    assert remote.create(name, b"one")
    assert not remote.create(name, b"two")  # If-None-Match: *
    blob = remote.get(name)
    assert blob is not None and blob.data == b"one"
    remote.replace(name, b"three", blob.tag)  # If-Match: etag
    with pytest.raises(Conflict):
        remote.replace(name, b"four", blob.tag)
    with pytest.raises(Conflict):
        remote.replace("c/" + "cd" * 20, b"x", "not-a-tag")
    assert remote.list("c/") == [name]
    remote.delete(name)
    assert remote.list("c/") == []


def test_two_devices_sync_through_s3_and_it_sees_only_ciphertext(
    bucket: str, fast_dir: Path, s3_endpoint: str
) -> None:
    canary = "CANARY-s3-51d0"
    made = create_vault(fast_dir / "a", device_name=f"laptop-{canary}")
    a = made.vault
    a.add(f"The code word is {canary}")
    a.remotes.add("s3", bucket)
    a.sync()
    b = restore_vault(fast_dir / "b", made.recovery_phrase, bucket)
    try:
        assert canary in b.list().items[0].text
        b.add("Second device note")
        b.sync()
        a.sync()
        assert {m.text for m in a.list().items} == {m.text for m in b.list().items}
        assert a.check().state_digest == b.check().state_digest
        client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
        bucket_name = bucket.split("/")[2]
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket_name)["Contents"]]
        assert keys
        for key in keys:
            data = client.get_object(Bucket=bucket_name, Key=key)["Body"].read()
            for needle in (canary, a.header.vault_id, a.device.device_id, "laptop"):
                assert needle not in key
                for enc in ("utf-8", "utf-16-le", "utf-16-be"):
                    assert needle.encode(enc) not in data
    finally:
        a.close()
        b.close()


def test_a_missing_bucket_or_missing_credentials_is_one_clear_error(
    bucket: str, s3_endpoint: str, fast_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = create_vault(fast_dir / "a")
    try:
        with pytest.raises(RemoteError, match="NoSuchBucket"):
            made.vault.remotes.add("s3", f"s3://no-such-bucket/x?endpoint={s3_endpoint}")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(name)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(fast_dir / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(fast_dir / "none"))
        with pytest.raises(RemoteError, match="no credentials"):
            made.vault.remotes.add("s3", bucket)
        assert made.vault.remotes.list() == []
    finally:
        made.vault.close()
