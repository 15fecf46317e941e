"""A dApp's client for the NOS oracle: public and private requests, end to end.

    from nos_relay.client import NosClient
    from nos_enclave.protocol import Params

    client = NosClient(w3, oracle, account)          # web3, the NosOracle contract, a LocalAccount
    answer = client.request(Params("https://host/price.json", "json:data.price", "uint256", 2), private=True)
    answer.value                                     # 234567

A private request reads the enclave's encryption key from chain
(`EncryptionKeyPublished` / `enclaveEncryptionKey`), seals the params to it
bound to the requester and the id its next request gets (`nextRequestId`),
sends the request, waits for `Delivered` and decrypts the answer with a reply
key that never leaves this process. The byte layout is in docs/oracle.md
("Private requests, byte by byte"); `nos-client request --private` is the
same from the command line.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from coincurve import PrivateKey
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception

from dccn_common.bot import run_cli
from dccn_common.chain import bind_chain
from dccn_common.config import ConfigError
from dccn_common.keys import load_account
from nos_enclave.crypto import DecryptionError, ecies_decrypt
from nos_enclave.protocol import Params, ParamsError, encrypt_params, parse_params

ORACLE = "NosOracle"
NO_CALLBACK = "0x" + "00" * 20


class ClientError(ConfigError):
    """Something the dApp developer can fix or must know: one line, no traceback."""


@dataclass(frozen=True)
class Answer:
    request_id: bytes
    data: bytes  # the result as encoded by the enclave (decrypted for a private request)
    value: int | str | bytes
    callback_succeeded: bool
    tx_hash: str


def decode_value(data: bytes, result_type: str) -> int | str | bytes:
    """The response data as the params' type asked for it."""
    if result_type in ("uint256", "int256"):
        return int(abi_decode([result_type], data)[0])
    if result_type == "string":
        return data.decode()
    return data


class NosClient:
    def __init__(self, w3: Web3, oracle: Any, account: LocalAccount, *, from_block: int = 0) -> None:
        self.w3 = w3
        self.oracle = oracle
        self.account = account
        self.from_block = from_block

    # -- the enclave's key, from chain ---------------------------------------------------------

    def enclave_key(self, enclave: str | None = None) -> tuple[str, bytes]:
        """(enclave address, encryption key): the named enclave's, or the latest published one still registered."""
        if enclave is not None:
            address = Web3.to_checksum_address(enclave)
            key = bytes(self.oracle.functions.enclaveEncryptionKey(address).call())
            if not key or not self._registered(address):
                raise ClientError(f"enclave {address} is not registered or has published no encryption key")
            return address, key
        published = self.oracle.events.EncryptionKeyPublished().get_logs(from_block=self.from_block)
        for entry in reversed(list(published)):
            address, key = entry["args"]["enclave"], bytes(entry["args"]["new_key"])
            current = bytes(self.oracle.functions.enclaveEncryptionKey(address).call())
            if current == key and self._registered(address):
                return address, key
        raise ClientError("no registered enclave has published an encryption key on this oracle "
                          "(the owner runs `nos-relay register-enclave`)")

    def _registered(self, address: str) -> bool:
        return bytes(self.oracle.functions.enclave_measurement(address).call()) != bytes(32)

    # -- requests --------------------------------------------------------------------------------

    def seal(self, params: Params, enclave_key: bytes, reply_key: PrivateKey) -> tuple[bytes, bytes]:
        """(on-chain params, the request id they are bound to) for a private request."""
        request_id = bytes(self.oracle.functions.nextRequestId(self.account.address).call())
        with_reply = Params(params.url, params.path, params.type, params.decimals, reply_key.public_key.format())
        return encrypt_params(enclave_key, with_reply, self.account.address, request_id), request_id

    def send_request(self, raw_params: bytes, *, callback: str = NO_CALLBACK, callback_gas_limit: int = 0,
                     max_gas_price: int | None = None) -> bytes:
        """Send `request(params, callback, limit)` with the fee for `max_gas_price`; returns the request id."""
        price = max_gas_price if max_gas_price is not None else 2 * int(self.w3.eth.gas_price) + 1
        fee = int(self.oracle.functions.requestFee(callback_gas_limit, price).call())
        call = self.oracle.functions.request(raw_params, callback, callback_gas_limit)
        try:
            tx = call.build_transaction({"from": self.account.address, "value": fee,
                                         "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending")})
        except ContractLogicError as err:
            raise ClientError(f"the oracle refuses the request: {err}") from err
        tx_hash = self.w3.eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise ClientError(f"request transaction {HexBytes(tx_hash).to_0x_hex()} reverted")
        return bytes(self.oracle.events.Request().process_receipt(receipt)[0]["args"]["requestId"])

    def wait_delivered(self, request_id: bytes, timeout: float = 120.0, poll: float = 0.5) -> Any:
        """The `Delivered` log of `request_id`, once there."""
        deadline = time.monotonic() + timeout
        while True:
            logs = self.oracle.events.Delivered().get_logs(from_block=self.from_block,
                                                           argument_filters={"requestId": request_id})
            if logs:
                return logs[0]
            if time.monotonic() > deadline:
                raise ClientError(f"no answer to {request_id.hex()} within {timeout:.0f} s; it stays pending and "
                                  "its requester can cancel it after expiresAt")
            time.sleep(poll)

    def request(self, params: Params, *, private: bool = False, enclave: str | None = None,
                callback: str = NO_CALLBACK, callback_gas_limit: int = 0, max_gas_price: int | None = None,
                timeout: float = 120.0) -> Answer:
        """Ask, wait, (decrypt) and decode: the whole round trip."""
        try:
            parse_params(params.to_json())  # refuse here what the relay would mark unanswerable
        except ParamsError as err:
            raise ClientError(str(err)) from err
        reply_key = PrivateKey()
        expected: bytes | None = None
        raw = params.to_json()
        if private:
            raw, expected = self.seal(params, self.enclave_key(enclave)[1], reply_key)
        request_id = self.send_request(raw, callback=callback, callback_gas_limit=callback_gas_limit,
                                       max_gas_price=max_gas_price)
        if expected is not None and request_id != expected:
            raise ClientError(f"another request of {self.account.address} was mined first: the ciphertext is bound "
                              f"to {expected.hex()}, not {request_id.hex()}; cancel it after expiry and retry")
        delivered = self.wait_delivered(request_id, timeout)
        data = bytes(delivered["args"]["data"])
        if private:
            try:
                data = ecies_decrypt(reply_key.secret, data, request_id)
            except DecryptionError as err:
                raise ClientError(f"the answer does not decrypt with this request's reply key: {err}") from err
        return Answer(request_id, data, decode_value(data, params.type), bool(delivered["args"]["callbackSucceeded"]),
                      HexBytes(delivered["transactionHash"]).to_0x_hex())


# -- CLI -----------------------------------------------------------------------------------------


@click.group(help="A dApp's NOS oracle client: send a (private) request, wait for the answer, decrypt it.")
def main() -> None:
    pass


@main.command("request", help="Ask the oracle for one value and print the answer (JSON).")
@click.option("--rpc-url", required=True, help="JSON-RPC URL of the chain.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Deployment manifest holding NosOracle.")
@click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Encrypted keystore of the requester.")
@click.option("--password-env", default="NOS_CLIENT_PASSWORD", show_default=True)
@click.option("--url", required=True, help="https:// URL of the source.")
@click.option("--path", "selector", required=True, help="Selector: json:a.b, xml:./a/b or regex:(...).")
@click.option("--type", "result_type", default="uint256", show_default=True, help="uint256, int256, string, bytes32.")
@click.option("--decimals", type=int, default=0, show_default=True, help="Scale numbers by 10**decimals.")
@click.option("--private", is_flag=True, help="Encrypt the params to the enclave's key read from chain; "
                                              "the answer is encrypted to a fresh reply key and decrypted here.")
@click.option("--enclave", default=None, help="Enclave address whose key to use (default: latest published).")
@click.option("--max-gas-price-gwei", type=float, default=None, help="Highest delivery gas price paid for.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for the answer.")
def request_command(rpc_url: str, manifest: Path, keystore: Path, password_env: str, url: str, selector: str,
                    result_type: str, decimals: int, private: bool, enclave: str | None,
                    max_gas_price_gwei: float | None, timeout: float) -> None:
    def body() -> None:
        params = Params(url, selector, result_type, decimals)
        try:
            parse_params(params.to_json())
        except ParamsError as err:
            raise ClientError(str(err)) from err  # before touching keys or chain
        binding = bind_chain(rpc_url, manifest, label="nos-client")
        client = NosClient(binding.w3, binding.contract(ORACLE), load_account(keystore, password_env),
                           from_block=binding.deployment_block(ORACLE))
        price = None if max_gas_price_gwei is None else int(max_gas_price_gwei * 10**9)
        try:
            answer = client.request(params, private=private, enclave=enclave, max_gas_price=price, timeout=timeout)
        except (Web3Exception, OSError) as err:
            raise ClientError(f"chain error at {rpc_url}: {type(err).__name__}: {err}") from err
        value = answer.value.hex() if isinstance(answer.value, bytes) else answer.value
        click.echo(json.dumps({"request_id": "0x" + answer.request_id.hex(), "value": value,
                               "data": "0x" + answer.data.hex(), "private": private,
                               "callback_succeeded": answer.callback_succeeded, "delivery_tx": answer.tx_hash}))

    run_cli(body)


if __name__ == "__main__":
    main(sys.argv[1:])
