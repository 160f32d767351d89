"""Hyperliquid L1 action signing and nonces. Sans-I/O apart from the nonce lease file.

An L1 action (order, cancel, modify, ...) is signed like this, as the
official SDK does (`hyperliquid.utils.signing.sign_l1_action`):

1. `connectionId` = keccak256(msgpack(action) ‖ nonce as 8 bytes big-endian ‖
   vault flag (0x00, or 0x01 ‖ 20-byte vault address) ‖ [0x00 ‖ expiresAfter
   as 8 bytes]);
2. the "phantom agent" `{source: "a" (mainnet) | "b" (testnet), connectionId}`
   is signed as EIP-712 typed data (`Agent`, domain `Exchange` v1, chainId
   1337, zero verifying contract).

The elliptic-curve work (EIP-712 encoding, secp256k1 signing, recovery) is
eth-account's; msgpack and keccak are the msgpack and eth-utils packages.
Nothing here is our own cryptography, and `tests/test_hyperliquid_codec.py`
checks the signatures byte for byte against the SDK's.

The key is an API wallet ("agent") key, approved by the account for this
network: it can trade but not withdraw. It is read from a credential file
only and never appears in a repr, a log line or an exception.

Nonces: the venue keeps the 100 highest nonces per signer and refuses one
it has seen or one below the smallest of those, and only accepts nonces
within (now - 2 days, now + 1 day). `NonceClock` hands out
max(now_ms, last + 1) and persists a *lease* (a high-water mark a little
ahead of what it hands out) before handing out anything above it, so a
restart after kill -9 starts above every nonce the last run could have
used, with at most one fsync per `lease_ms`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import msgpack
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_hex

from fractald.errors import AuthError, InvariantViolation

KEY_RE = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")

_DOMAIN = {
    "chainId": 1337,
    "name": "Exchange",
    "verifyingContract": "0x" + "0" * 40,
    "version": "1",
}
_TYPES = {
    "Agent": [{"name": "source", "type": "string"}, {"name": "connectionId", "type": "bytes32"}],
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
}


def action_hash(
    action: dict[str, Any],
    nonce: int,
    vault_address: str | None = None,
    expires_after: int | None = None,
) -> bytes:
    """The 32-byte `connectionId` of an L1 action (key order of `action` matters: msgpack keeps it)."""
    data = msgpack.packb(action) + nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(vault_address.removeprefix("0x"))
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return bytes(keccak(data))


def l1_typed_data(connection_id: bytes, *, mainnet: bool) -> dict[str, Any]:
    """The EIP-712 payload that is actually signed: the phantom agent for this network."""
    return {
        "domain": _DOMAIN,
        "types": _TYPES,
        "primaryType": "Agent",
        "message": {"source": "a" if mainnet else "b", "connectionId": connection_id},
    }


class AgentSigner:
    """Signs L1 actions with an API-wallet key for one network. The key never leaves this object."""

    __slots__ = ("_account", "address", "mainnet")

    def __init__(self, private_key: str, *, mainnet: bool) -> None:
        key = private_key.strip()
        if not KEY_RE.match(key):
            # Never echo the value: it may be a real key with one typo.
            raise AuthError(
                "hyperliquid agent key is not 32 bytes of hex (64 hex digits, optional 0x)"
            )
        self._account = Account.from_key(key if key.startswith("0x") else "0x" + key)
        self.address: str = self._account.address
        self.mainnet = mainnet

    def __repr__(self) -> str:
        return f"AgentSigner(address={self.address}, mainnet={self.mainnet})"

    def sign_l1(
        self,
        action: dict[str, Any],
        nonce: int,
        *,
        vault_address: str | None = None,
        expires_after: int | None = None,
    ) -> dict[str, Any]:
        """`{"r": "0x..", "s": "0x..", "v": 27|28}`, the shape /exchange expects."""
        digest = action_hash(action, nonce, vault_address, expires_after)
        signed = self._account.sign_message(
            encode_typed_data(full_message=l1_typed_data(digest, mainnet=self.mainnet))
        )
        return {"r": to_hex(signed.r), "s": to_hex(signed.s), "v": signed.v}


def recover_l1_signer(
    action: dict[str, Any],
    nonce: int,
    signature: dict[str, Any],
    *,
    mainnet: bool,
    vault_address: str | None = None,
    expires_after: int | None = None,
) -> str:
    """The address that signed this action (for checks; a wrong network gives another address)."""
    digest = action_hash(action, nonce, vault_address, expires_after)
    message = encode_typed_data(full_message=l1_typed_data(digest, mainnet=mainnet))
    return str(
        Account.recover_message(message, vrs=(signature["v"], signature["r"], signature["s"]))
    )


def read_agent_key(credentials_dir: str | Path | None, name: str) -> str:
    """The agent key from `$CREDENTIALS_DIRECTORY/<name>`; AuthError names the file, never the content."""
    if not credentials_dir:
        raise AuthError(
            f"hyperliquid key credential {name!r}: $CREDENTIALS_DIRECTORY is not set "
            "(systemd LoadCredential=, or set it for a manual run)"
        )
    if not name or "/" in name or name in (".", ".."):
        raise AuthError(f"hyperliquid key credential name {name!r} must be a plain file name")
    path = Path(credentials_dir) / name
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise AuthError(f"hyperliquid key credential {path} unreadable: {exc.strerror}") from None
    if not KEY_RE.match(text):
        raise AuthError(f"hyperliquid key credential {path} does not hold 64 hex digits")
    return text


class NonceClock:
    """Strictly increasing millisecond nonces, across restarts (see the module doc).

    `path` holds the lease as decimal text; None keeps it in memory only (tests, benchmarks).
    """

    def __init__(self, path: str | Path | None, *, lease_ms: int = 10_000) -> None:
        self.path = Path(path) if path is not None else None
        self.lease_ms = lease_ms
        self.lease = self._read()
        self.last = self.lease

    def _read(self) -> int:
        if self.path is None or not self.path.exists():
            return 0
        text = self.path.read_text().strip()
        if not text.isdigit():
            raise InvariantViolation(
                f"nonce lease file {self.path} holds {text[:40]!r}, not a number"
            )
        return int(text)

    def _write(self, lease: int) -> None:
        if self.path is not None:
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w") as fh:
                fh.write(f"{lease}\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self.lease = lease

    def next(self, now_ms: int) -> int:
        """The next nonce: max(now_ms, last + 1). Refuses to run more than a day ahead of the clock
        (the venue would refuse such nonces; a clock that far behind is the real problem)."""
        nonce = max(now_ms, self.last + 1)
        if nonce - now_ms > 86_400_000:
            raise InvariantViolation(
                f"nonce {nonce} is more than a day ahead of the clock ({now_ms}): "
                "the system clock went back; fix it before trading"
            )
        if nonce > self.lease:
            self._write(nonce + self.lease_ms)
        self.last = nonce
        return nonce


def valid_address(address: str) -> bool:
    return bool(ADDRESS_RE.match(address))
