"""Encryption of the NOS oracle: ECIES on secp256k1 for private requests and
their results, AES-256-GCM sealing of the enclave's keys at rest.

ECIES (byte layout in docs/oracle.md, "Private requests, byte by byte"):

    envelope = E (33, SEC1 compressed ephemeral public key) || nonce (12)
               || AES-256-GCM ciphertext || tag (16)
    Z        = x coordinate (32 bytes, big endian) of e * R, the plain SEC1
               ECDH value (what `cryptography`'s ECDH exchange returns)
    key      = HKDF-SHA256(ikm=Z, salt=E, info="NOS ECIES v2" || R (33, compressed), length=32)

The associated data binds a ciphertext to its context (requester and request
id), so a relay cannot move it to another request.
"""

from __future__ import annotations

import os
from functools import lru_cache

from coincurve import PrivateKey, PublicKey
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

ECIES_INFO = b"NOS ECIES v2"
SEAL_INFO = b"NOS enclave seal v1"
NONCE_BYTES = 12
PUBKEY_BYTES = 33
TAG_BYTES = 16
ENVELOPE_OVERHEAD = PUBKEY_BYTES + NONCE_BYTES + TAG_BYTES


class DecryptionError(ValueError):
    """A ciphertext is malformed, for another key, or was tampered with."""


def _hkdf(secret: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


def _ecdh_x(private_key: bytes, public_key: PublicKey) -> bytes:
    # The raw x coordinate, not coincurve's default sha256 of the point: the standard value every library gives.
    return public_key.multiply(private_key).format(compressed=True)[1:]


def _ecies_key(shared_x: bytes, ephemeral_public: bytes, recipient: PublicKey) -> bytes:
    return _hkdf(shared_x, ephemeral_public, ECIES_INFO + recipient.format(compressed=True))


def ecies_encrypt(recipient_public_key: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    """Encrypt to a compressed or uncompressed secp256k1 public key."""
    try:
        recipient = PublicKey(recipient_public_key)
    except ValueError as err:
        raise ValueError(f"not a secp256k1 public key: {err}") from err
    ephemeral = PrivateKey()
    ephemeral_public = ephemeral.public_key.format(compressed=True)
    key = _ecies_key(_ecdh_x(ephemeral.secret, recipient), ephemeral_public, recipient)
    nonce = os.urandom(NONCE_BYTES)
    return ephemeral_public + nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def ecies_decrypt(private_key: bytes, ciphertext: bytes, associated_data: bytes = b"") -> bytes:
    if len(ciphertext) < ENVELOPE_OVERHEAD:
        raise DecryptionError("ciphertext too short")
    ephemeral_public = ciphertext[:PUBKEY_BYTES]
    nonce = ciphertext[PUBKEY_BYTES : PUBKEY_BYTES + NONCE_BYTES]
    try:
        ephemeral = PublicKey(ephemeral_public)
        shared = _ecdh_x(private_key, ephemeral)
    except ValueError as err:
        raise DecryptionError(f"bad ephemeral key: {err}") from err
    key = _ecies_key(shared, ephemeral_public, PrivateKey(private_key).public_key)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext[PUBKEY_BYTES + NONCE_BYTES :], associated_data)
    except InvalidTag as err:
        raise DecryptionError("ciphertext does not authenticate (wrong key, context or tampered)") from err


@lru_cache(maxsize=8)
def _signer(private_key: bytes) -> PrivateKey:
    """The key object of a signing key (its public key computed once, not per signature)."""
    return PrivateKey(private_key)


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """65-byte r || s || v (v in {27, 28}, low s) over a 32-byte digest."""
    signature = _signer(bytes(private_key)).sign_recoverable(digest, hasher=None)
    return signature[:64] + bytes([signature[64] + 27])


def public_key_of(private_key: bytes) -> bytes:
    return PrivateKey(private_key).public_key.format(compressed=True)


# -- sealing at rest ---------------------------------------------------------------


def _seal_key(secret: str, salt: bytes) -> bytes:
    # scrypt: the secret may be a passphrase; cost kept low enough for restarts in tests.
    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(secret.encode())


def seal(secret: str, plaintext: bytes) -> bytes:
    """salt (16) || nonce (12) || AES-256-GCM(plaintext)."""
    salt, nonce = os.urandom(16), os.urandom(NONCE_BYTES)
    return salt + nonce + AESGCM(_seal_key(secret, salt)).encrypt(nonce, plaintext, SEAL_INFO)


def unseal(secret: str, blob: bytes) -> bytes:
    if len(blob) < 16 + NONCE_BYTES + 16:
        raise DecryptionError("sealed blob too short")
    salt, nonce = blob[:16], blob[16 : 16 + NONCE_BYTES]
    try:
        return AESGCM(_seal_key(secret, salt)).decrypt(nonce, blob[16 + NONCE_BYTES :], SEAL_INFO)
    except InvalidTag as err:
        raise DecryptionError("cannot unseal: wrong secret or the sealed file was altered") from err
