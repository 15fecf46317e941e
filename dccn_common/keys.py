"""Keys are never in plain files by default: eth-account keystore JSON (scrypt +
AES-128-CTR), unlocked with a password taken from an environment variable."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from eth_account import Account
from eth_account.signers.local import LocalAccount


class KeystoreError(ValueError):
    """A keystore could not be read or unlocked."""


def password_from_env(env_var: str) -> str:
    password = os.environ.get(env_var)
    if not password:
        raise KeystoreError(f"the keystore password is read from ${env_var}, which is not set")
    return password


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
        key = sys.stdin.readline().strip()
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
