"""Letting a new device into a vault through a remote, with a safety code to compare.

1. The new device (`memsync device join URL`) puts a request on the remote: its fresh
   public keys, nothing else (`j/<id>`).
2. A device already in (`memsync device approve`) answers with its own public keys
   (`o/<id>`). Both now show the same safety code, six words derived from both keys; the
   person compares them. Storage that swapped a key in between makes the codes differ.
3. When the person types the code shown on the new device and it matches, the approver
   records the enrolment as a signed operation of its feed, syncs, and leaves a welcome
   (`w/<id>`): the vault header and key, sealed to the new device and signed by the
   approver. The new device checks the signature against the key the code covered, pulls
   the vault, and declares itself in its own feed; every device accepts that declaration
   because a trusted device enrolled exactly those keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from memsync import codec
from memsync.core import Core
from memsync.crypto import aead, phrase, wrap
from memsync.crypto.device import DeviceKeys, sign, verify
from memsync.errors import CryptoError, SyncRefused, UsageError
from memsync.sync.remote import Remote

__all__ = ["Request", "approve_request", "offer", "open_welcome", "pending", "post_request"]

_AD = b"memsync/v1/pairing"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Request:
    """A new device's pairing request."""

    id: str
    device_id: str
    wrap_pub: bytes
    sign_pub: bytes

    def to_bytes(self) -> bytes:
        doc = {"device": self.device_id, "wrap": _b64(self.wrap_pub), "sign": _b64(self.sign_pub)}
        return aead.pad(json.dumps(doc, sort_keys=True).encode())

    @classmethod
    def from_bytes(cls, request_id: str, data: bytes) -> Request:
        try:
            doc = json.loads(aead.unpad(data))
            wrap_pub = base64.b64decode(doc["wrap"], validate=True)
            sign_pub = base64.b64decode(doc["sign"], validate=True)
            device = str(doc["device"])
        except (CryptoError, ValueError, KeyError, TypeError) as exc:
            raise SyncRefused(f"pairing request {request_id} is malformed: {exc}") from None
        if len(wrap_pub) != 32 or len(sign_pub) != 32 or not device.startswith("d-"):
            raise SyncRefused(f"pairing request {request_id} is malformed")
        return cls(request_id, device, wrap_pub, sign_pub)


def _keys_doc(wrap_pub: bytes, sign_pub: bytes) -> bytes:
    return aead.pad(json.dumps({"wrap": _b64(wrap_pub), "sign": _b64(sign_pub)}).encode())


def _parse_keys(data: bytes, what: str) -> tuple[bytes, bytes]:
    try:
        doc = json.loads(aead.unpad(data))
        return (
            base64.b64decode(doc["wrap"], validate=True),
            base64.b64decode(doc["sign"], validate=True),
        )
    except (CryptoError, ValueError, KeyError, TypeError) as exc:
        raise SyncRefused(f"{what} is malformed: {exc}") from None


def safety_code(request: bytes, answer: bytes) -> str:
    """Six words (66 bits) from both devices' keys: too many to grind a collision."""
    digest = hashlib.sha256(b"memsync/v1/safety-code" + request + b"\x00" + answer).digest()
    words = phrase._bip39().wordlist
    number = int.from_bytes(digest[:9], "big")
    return " ".join(words[(number >> (11 * i)) & 2047] for i in range(6))


def normalize_code(code: str) -> str:
    return " ".join(code.lower().replace("-", " ").split())


# The new device's side.


def post_request(remote: Remote, keys: DeviceKeys) -> Request:
    request = Request(
        secrets.token_hex(20),
        keys.device_id,
        keys.wrap_public.public_bytes_raw(),
        keys.sign_public.public_bytes_raw(),
    )
    remote.create(f"j/{request.id}", request.to_bytes())
    return request


def answer_for(remote: Remote, request: Request) -> tuple[bytes, bytes, str] | None:
    """The approver's keys and the safety code, once an approver has answered."""
    blob = remote.get(f"o/{request.id}")
    if blob is None:
        return None
    wrap_pub, sign_pub = _parse_keys(blob.data, "the pairing answer")
    return wrap_pub, sign_pub, safety_code(request.to_bytes(), blob.data)


def open_welcome(
    remote: Remote, request: Request, keys: DeviceKeys, approver_sign_pub: bytes
) -> tuple[bytes, bytes, bytes | None, dict[int, bytes]] | None:
    """(header bytes, vault key, recovery wrapping key, epoch keys) from the welcome, or
    None while there is none; SyncRefused if it is not signed by the approver."""
    blob = remote.get(f"w/{request.id}")
    if blob is None:
        return None
    try:
        doc = json.loads(aead.unpad(blob.data))
        body = base64.b64decode(doc["body"], validate=True)
        signature = base64.b64decode(doc["sig"], validate=True)
        stanza = wrap.Stanza.from_json(doc["key"])
    except (CryptoError, ValueError, KeyError, TypeError) as exc:
        raise SyncRefused(f"the pairing welcome is malformed: {exc}") from None
    signed = _AD + request.id.encode() + body + json.dumps(doc["key"], sort_keys=True).encode()
    if not verify(approver_sign_pub, signature, signed):
        raise SyncRefused("the pairing welcome is not signed by the device that showed the code")
    ad = _AD + request.id.encode()
    vault_key = wrap.unwrap_key(stanza, keys.wrap_key, ad)
    inner = json.loads(aead.unpad(aead.open_sealed(aead.hkdf(vault_key, ad), body, ad)))
    header = base64.b64decode(inner["header"], validate=True)
    recovery = inner.get("recovery_wrap_pub")
    epochs = {int(n): base64.b64decode(k) for n, k in inner.get("epoch_keys", {}).items()}
    return header, vault_key, None if recovery is None else base64.b64decode(recovery), epochs


def clean_up(remote: Remote, request: Request) -> None:
    for kind in ("j", "o", "w"):
        remote.delete(f"{kind}/{request.id}")


# The approving device's side.


def pending(remote: Remote) -> list[Request]:
    """Pairing requests on the remote that no device has welcomed yet."""
    out = []
    for name in remote.list("j/"):
        request_id = name[2:]
        if remote.get(f"w/{request_id}") is not None:
            continue
        blob = remote.get(name)
        if blob is not None:
            out.append(Request.from_bytes(request_id, blob.data))
    return out


def offer(remote: Remote, request: Request, keys: DeviceKeys) -> str:
    """Answer `request` with this device's keys; returns the safety code to compare."""
    answer = _keys_doc(keys.wrap_public.public_bytes_raw(), keys.sign_public.public_bytes_raw())
    name = f"o/{request.id}"
    if not remote.create(name, answer):
        current = remote.get(name)
        if current is None or current.data != answer:
            raise UsageError("another device is already answering this pairing request")
    return safety_code(request.to_bytes(), answer)


def approve_request(core: Core, request: Request) -> dict[str, object]:
    """Record the enrolment of `request`'s device (the caller has compared the codes) and
    return the operation; `welcome` then hands the keys over."""
    op: dict[str, object] = {
        "op": "enrol_device",
        "device_id": request.device_id,
        "wrap_pub": _b64(request.wrap_pub),
        "sign_pub": _b64(request.sign_pub),
        "by": core.device.device_id,
        "at": codec.to_ms(core.clock()),
    }
    core.commit([op])
    return op


def welcome(core: Core, remote: Remote, request: Request, header: bytes) -> None:
    """Seal the vault key and header to the new device, signed by this device."""
    ad = _AD + request.id.encode()
    stanza = wrap.wrap_key(
        core.vault_key, X25519PublicKey.from_public_bytes(request.wrap_pub), kind="device", ad=ad
    ).to_json()
    recovery = core.recovery_wrap_pub()
    epoch_keys = {
        str(n): _b64(k)
        for (n,) in core.conn.execute("SELECT epoch FROM epochs")
        if (k := core.epoch_key(int(n))) is not None
    }
    inner = {
        "epoch_keys": epoch_keys,
        "header": _b64(header),
        "recovery_wrap_pub": None if recovery is None else _b64(recovery),
    }
    body = aead.seal(aead.hkdf(core.vault_key, ad), aead.pad(json.dumps(inner).encode()), ad)
    signed = _AD + request.id.encode() + body + json.dumps(stanza, sort_keys=True).encode()
    doc = {"key": stanza, "body": _b64(body), "sig": _b64(sign(core.device, signed))}
    remote.create(f"w/{request.id}", aead.pad(json.dumps(doc).encode()))
