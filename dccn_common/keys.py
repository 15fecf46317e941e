"""Keys are never in plain files by default: eth-account keystore JSON (scrypt +
AES-128-CTR), unlocked with a password taken from an environment variable."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from dccn_common.store import Claim, claim
from nos_enclave.settings import required_env


class KeystoreError(ValueError):
    """A keystore could not be read or unlocked."""


def password_from_env(env_var: str) -> str:
    return required_env(env_var, "the keystore password", KeystoreError)


def runtime_dir() -> Path:
    """A per-user folder for locks that span databases ($XDG_RUNTIME_DIR/dccn or /tmp/dccn-<uid>)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "dccn" if base else Path(tempfile.gettempdir()) / f"dccn-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.getuid():
        raise KeystoreError(f"lock folder {folder} belongs to another user")
    return folder


def claim_signer(w3: Web3, address: str, service: str) -> Claim:
    """Refuse a second service signing with the same key on the same chain (nonces would collide).

    The chain is its id and genesis hash: two local test chains may share an id but not a genesis.
    """
    chain_id = int(w3.eth.chain_id)
    genesis = bytes(w3.eth.get_block(0)["hash"]).hex()[:16]
    lock = runtime_dir() / f"signer-{chain_id}-{genesis}-{Web3.to_checksum_address(address)}.lock"
    return claim(lock, service, f"signing key {address} on chain {chain_id}")


def load_account(keystore: Path | str, password_env: str) -> LocalAccount:
    """Unlock an eth-account keystore file with the password in `password_env`."""
    path = Path(keystore)
    if not path.is_file():
        raise KeystoreError(f"keystore not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise KeystoreError(f"{path} is not a keystore (invalid JSON)") from err
    try:
        key = Account.decrypt(data, password_from_env(password_env))
    except ValueError as err:
        raise KeystoreError(f"cannot unlock {path}: {err}") from err
    return Account.from_key(key)


def write_keystore(path: Path | str, private_key: str | bytes, password: str, *, kdf_n: int = 2**14) -> str:
    """Encrypt a key into a keystore file (mode 0600, written atomically); returns the address."""
    path = Path(path)
    account = Account.from_key(private_key)
    # eth-account's default scrypt cost (2**18) takes ~1s per unlock; services and
    # tests unlock often, so the cost is a parameter (2**14 ~ 60 ms).
    data = Account.encrypt(account.key, password, kdf="scrypt", iterations=kdf_n)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    tmp.replace(path)
    return str(account.address)


SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def parse_private_key(text: str) -> bytes:
    """A secp256k1 private key from 64 hex digits (0x optional), with a message saying what is wrong."""
    digits = text.strip().removeprefix("0x").removeprefix("0X")
    if len(digits) != 64:
        raise KeystoreError(f"a private key is 64 hex digits (0x optional); got {len(digits)} characters")
    try:
        value = int(digits, 16)
    except ValueError:
        raise KeystoreError("a private key is 64 hex digits (0x optional); the input has other characters") from None
    if not 0 < value < SECP256K1_ORDER:
        raise KeystoreError("that private key is out of range: it must be between 1 and the secp256k1 "
                            "group order minus 1 (an all-zero key is not a key)")
    return value.to_bytes(32, "big")


@click.group(help="Create and inspect encrypted keystores (password from an environment variable).")
def main() -> None:
    pass


@main.command("new", help="Generate a new key into an encrypted keystore.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--password-env", default="DCCN_KEYSTORE_PASSWORD", show_default=True)
def new(path: Path, password_env: str) -> None:
    try:
        password = password_from_env(password_env)
    except KeystoreError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    if path.exists():
        click.echo(f"error: {path} exists; refusing to overwrite a key", err=True)
        sys.exit(2)
    address = write_keystore(path, Account.create().key, password)
    click.echo(address)


@main.command("import", help="Encrypt an existing private key, read from standard input.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--password-env", default="DCCN_KEYSTORE_PASSWORD", show_default=True)
def import_key(path: Path, password_env: str) -> None:
    try:
        password = password_from_env(password_env)
        key = parse_private_key(sys.stdin.readline())
        address = write_keystore(path, key, password)
    except (KeystoreError, ValueError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    click.echo(address)


@main.command("address", help="Print the address of a keystore (unlocks it to check the password).")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--password-env", default="DCCN_KEYSTORE_PASSWORD", show_default=True)
def address(path: Path, password_env: str) -> None:
    try:
        click.echo(load_account(path, password_env).address)
    except KeystoreError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
