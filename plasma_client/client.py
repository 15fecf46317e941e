"""`plasma-client`: a user's command line for a Plasma child chain.

Every command takes the same connection options (or PLASMA_* environment variables):
the root-chain RPC URL, the deployment manifest, the operator's API and the user's
encrypted keystore (password from an environment variable).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import click
from eth_account.signers.local import LocalAccount
from rich.console import Console
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TimeExhausted, Web3Exception

from dccn_common.chain import connect
from dccn_common.config import ConfigError
from dccn_common.contracts import transact
from dccn_common.keys import KeystoreError, load_account
from dccn_common.manifest import Manifest, ManifestError
from plasma_client.remote import OperatorApiError, OperatorClient
from plasma_client.wallet import (
    Coin,
    WalletError,
    build_transfer,
    challenge_args_from_api,
    choose_coins,
    exit_args_from_api,
    parse_amount,
)
from plasma_core import wire

T = TypeVar("T")
FINALIZE_GAS_BASE = 150_000
FINALIZE_GAS_PER_EXIT = 120_000
EXIT_PENDING, EXIT_FINALIZED = 1, 2  # RootChain.exits(...) status
console = Console(stderr=True, highlight=False)

ERC20_APPROVE_ABI = [{"type": "function", "name": "approve", "stateMutability": "nonpayable",
                      "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
                      "outputs": [{"name": "", "type": "bool"}]}]


@dataclass
class Session:
    rpc_url: str
    manifest_path: Path
    contract_name: str
    operator_url: str
    keystore: Path | None
    password_env: str

    @cached_property
    def w3(self) -> Web3:
        return connect(self.rpc_url)

    @cached_property
    def rootchain(self) -> Contract:
        return Manifest.load(self.manifest_path).contract(self.w3, self.contract_name)

    @cached_property
    def account(self) -> LocalAccount:
        if self.keystore is None:
            raise KeystoreError("no keystore given: use --keystore or PLASMA_KEYSTORE")
        return load_account(self.keystore, self.password_env)

    @cached_property
    def operator(self) -> OperatorClient:
        return OperatorClient(self.operator_url)

    def send(self, what: str, call: Any, *, value: int = 0, gas: int | None = None) -> Any:
        with console.status(f"{what}: waiting for the transaction to be mined"):
            try:
                receipt = transact(self.w3, call, sender=self.account, value=value, gas=gas)
            except TimeExhausted as err:
                raise WaitTimeout(f"{what}: {err}; {MINING_ADVICE}") from None
        console.print(f"[green]ok[/] {what} (tx {receipt['transactionHash'].hex()}, gas {receipt['gasUsed']:,})")
        return receipt

    def confirmations(self) -> int:
        """The root-chain confirmations the operator waits for before it acts on an event."""
        return int(self.operator.status().get("confirmations", 0))


class WaitTimeout(RuntimeError):
    """A wait ran out of time; the message says what it waited for and what to check."""


MINING_ADVICE = "is the chain mining? start it with `dccn-anvil --block-time 1`, or mine blocks"


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.5, *,
             progress: Callable[[], str] | None = None, advice: Callable[[], str] | None = None) -> T:
    """Poll `check` until it returns something, showing `progress` (a spinner on a terminal, a
    line per change otherwise); on timeout a WaitTimeout saying what it waited for and `advice`."""
    deadline = time.monotonic() + timeout
    shown = ""
    with console.status(what) as spinner:
        while True:
            result = check()
            if result is not None:
                return result
            line = f"{what}: {progress()}" if progress else what
            if line != shown:
                spinner.update(line)
                if not console.is_terminal:
                    console.print(line)
                shown = line
            if time.monotonic() > deadline:
                hint = f"; {advice()}" if advice else ""
                raise WaitTimeout(f"timed out after {timeout:.0f}s, {shown}{hint}")
            time.sleep(interval)


class ChainWatch:
    """The root chain's head during a wait: for progress lines and for advice when it stalls."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.start = self.head = int(w3.eth.block_number)

    def refresh(self) -> int:
        self.head = int(self.w3.eth.block_number)
        return self.head

    def advice(self, otherwise: str) -> str:
        if self.refresh() == self.start:
            return f"the root chain made no block since block {self.start}: {MINING_ADVICE}"
        return otherwise


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Clear one-line errors (exit code 2 for user errors, 1 for refusals), never a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, KeystoreError, ManifestError, WalletError, wire.WireError) as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except (OperatorApiError, RuntimeError, Web3Exception) as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def emit(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(help=__doc__)
@click.option("--rpc-url", envvar="PLASMA_RPC_URL", default="http://127.0.0.1:8545", show_default=True,
              help="Root-chain JSON-RPC URL [env PLASMA_RPC_URL].")
@click.option("--manifest", envvar="PLASMA_MANIFEST", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("deployments/31337.json"), show_default=True, help="Deployment manifest [env PLASMA_MANIFEST].")
@click.option("--contract", envvar="PLASMA_CONTRACT", default="RootChain", show_default=True)
@click.option("--operator-url", envvar="PLASMA_OPERATOR_URL", default="http://127.0.0.1:8700", show_default=True,
              help="Operator HTTP API [env PLASMA_OPERATOR_URL].")
@click.option("--keystore", envvar="PLASMA_KEYSTORE", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Encrypted keystore of your account [env PLASMA_KEYSTORE].")
@click.option("--password-env", default="PLASMA_CLIENT_PASSWORD", show_default=True,
              help="Environment variable holding the keystore password.")
@click.pass_context
def main(ctx: click.Context, rpc_url: str, manifest: Path, contract: str, operator_url: str, keystore: Path | None,
         password_env: str) -> None:
    ctx.obj = Session(rpc_url, manifest, contract, operator_url, keystore, password_env)


@main.command(help="Deposit AMOUNT (wei, or 1.5ether) into the child chain; waits until the operator credits it.")
@click.argument("amount")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the operator to credit it.")
@click.option("--timeout", default=120.0, show_default=True)
@click.pass_obj
@handle_errors
def deposit(s: Session, amount: str, wait: bool, timeout: float) -> None:
    value = parse_amount(amount)
    if value <= 0:
        raise WalletError("the deposit must be positive")
    token = s.rootchain.functions.token().call()
    if int(token, 16) == 0:
        receipt = s.send(f"deposit {value}", s.rootchain.functions.deposit(), value=value)
    else:
        erc20 = s.w3.eth.contract(address=token, abi=ERC20_APPROVE_ABI)
        s.send(f"approve {value}", erc20.functions.approve(s.rootchain.address, value))
        receipt = s.send(f"deposit {value}", s.rootchain.functions.depositToken(value))
    blknum = int(s.rootchain.events.Deposit().process_receipt(receipt)[0]["args"]["blknum"])
    if wait:
        _wait_for_credit(s, blknum, int(receipt["blockNumber"]), timeout)
    emit({"blknum": blknum, "txindex": 0, "oindex": 0, "amount": str(value)})


@main.command(help="Send AMOUNT to ADDRESS on the child chain (inputs chosen from your UTXOs, change back to you).")
@click.argument("to")
@click.argument("amount")
@click.option("--fee", default="0", show_default=True, help="Fee paid to the operator.")
@click.option("--wait/--no-wait", default=False, show_default=True, help="Wait until its block is on the root chain.")
@click.option("--timeout", default=120.0, show_default=True)
@click.pass_obj
@handle_errors
def send(s: Session, to: str, amount: str, fee: str, wait: bool, timeout: float) -> None:
    if not Web3.is_address(to):
        raise WalletError(f"{to!r} is not an address")
    value, fee_value = parse_amount(amount), parse_amount(fee)
    coins = [Coin.from_api(u) for u in s.operator.utxos(s.account.address) if not u["exiting"]]
    tx = build_transfer(choose_coins(coins, value + fee_value), s.account.address, to, value, fee_value, s.account.key)
    accepted = s.operator.submit(tx)
    if wait:
        _wait_for_final(s, int(accepted["blknum"]), int(accepted["txindex"]), timeout)
    emit(accepted)


@main.command(help="Child-chain balance (from the operator) and root-chain balances of ADDRESS (default: yours).")
@click.argument("address", required=False)
@click.pass_obj
@handle_errors
def balance(s: Session, address: str | None) -> None:
    owner = Web3.to_checksum_address(address) if address else s.account.address
    utxos = s.operator.utxos(owner)
    emit({"address": owner,
          "child_chain": str(sum(int(u["amount"]) for u in utxos if not u["exiting"])),
          "exiting": str(sum(int(u["amount"]) for u in utxos if u["exiting"])),
          "root_chain": str(s.w3.eth.get_balance(owner)),
          "withdrawable": str(s.rootchain.functions.balances(owner).call())})


@main.command(help="Unspent outputs of ADDRESS (default: yours).")
@click.argument("address", required=False)
@click.pass_obj
@handle_errors
def utxos(s: Session, address: str | None) -> None:
    owner = Web3.to_checksum_address(address) if address else s.account.address
    emit({"address": owner, "utxos": s.operator.utxos(owner)})


@main.command("exit", help="Start the exit of your output (BLKNUM, TXINDEX, OINDEX), posting the exit bond.")
@click.argument("blknum", type=click.IntRange(1))
@click.argument("txindex", type=click.IntRange(0, wire.MAX_LEAVES - 1))
@click.argument("oindex", type=click.IntRange(0, 1))
@click.pass_obj
@handle_errors
def start_exit(s: Session, blknum: int, txindex: int, oindex: int) -> None:
    data = s.operator.tx(blknum, txindex)
    if data is None:
        raise WalletError(f"the operator has no transaction at ({blknum}, {txindex})")
    args = exit_args_from_api(data, oindex)
    _check_value_not_exiting(s, data, oindex)
    bond = int(s.rootchain.functions.exitBond().call())
    s.send(f"start exit {args.exit_id}", args.call(s.rootchain), value=bond)
    emit({"exit_id": args.exit_id, "bond": str(bond)})


@main.command(help="Challenge the exit EXIT_ID of an output that was spent (spending tx and confirm sig from the operator).")
@click.argument("exit_id", type=click.IntRange(1))
@click.pass_obj
@handle_errors
def challenge(s: Session, exit_id: int) -> None:
    blknum, txindex, oindex = wire.decode_position(exit_id)
    spent = s.operator.utxo(blknum, txindex, oindex)
    if spent is None or not spent.get("spent_by"):
        raise WalletError(f"the operator knows no spend of output {exit_id}")
    where = spent["spent_by"]
    spender = s.operator.tx(where["blknum"], where["txindex"])
    if spender is None or not spender.get("final"):
        raise WalletError("the spending transaction is not in a block on the root chain yet")
    args = challenge_args_from_api(exit_id, spender, int(where["slot"]))
    s.send(f"challenge exit {exit_id}", args.call(s.rootchain))
    emit({"exit_id": exit_id, "spent_by": where})


@main.command(help="Finalize matured exits in priority order (anyone may call it).")
@click.option("--max", "max_exits", default=10, show_default=True, type=click.IntRange(1))
@click.pass_obj
@handle_errors
def finalize(s: Session, max_exits: int) -> None:
    # finalizeExits stops early when gas runs low, so an estimate would find a gas limit that
    # finalizes nothing: give it room for every exit asked for.
    gas = min(FINALIZE_GAS_BASE + FINALIZE_GAS_PER_EXIT * max_exits, 15_000_000)
    receipt = s.send(f"finalize up to {max_exits} exits", s.rootchain.functions.finalizeExits(max_exits), gas=gas)
    finalized = s.rootchain.events.ExitFinalized().process_receipt(receipt)
    emit({"finalized": [{"exit_id": e["args"]["exitId"], "amount": str(e["args"]["amount"])} for e in finalized]})


@main.command(help="Withdraw what the root chain owes you (finalized exits, bonds).")
@click.pass_obj
@handle_errors
def withdraw(s: Session) -> None:
    owed = int(s.rootchain.functions.balances(s.account.address).call())
    if owed == 0:
        raise WalletError("nothing to withdraw")
    s.send(f"withdraw {owed}", s.rootchain.functions.withdraw())
    emit({"withdrawn": str(owed)})


@main.command(help="Sign confirm signatures for your inputs of the transaction (BLKNUM, TXINDEX) and publish them.")
@click.argument("blknum", type=click.IntRange(1))
@click.argument("txindex", type=click.IntRange(0, wire.MAX_LEAVES - 1))
@click.option("--timeout", default=120.0, show_default=True, help="How long to wait for the block to be final.")
@click.pass_obj
@handle_errors
def confirm(s: Session, blknum: int, txindex: int, timeout: float) -> None:
    data = _wait_for_final(s, blknum, txindex, timeout)
    root = bytes.fromhex(data["root"][2:])
    on_chain_root = bytes(s.rootchain.functions.getChildChain(blknum).call()[0])
    if on_chain_root != root:
        raise WalletError(f"the operator's root for block {blknum} is not the one on the root chain")
    leaf = wire.keccak(bytes.fromhex(data["tx"][2:]))
    signed = []
    for entry in data["inputs"]:
        owner = s.operator.utxo(entry["blknum"], entry["txindex"], entry["oindex"])
        if owner and owner["owner"] == s.account.address:
            sig = wire.confirm_sign(leaf, root, s.account.key)
            s.operator.confirm(blknum, txindex, int(entry["slot"]), sig)
            signed.append({"slot": entry["slot"], "sig": "0x" + sig.hex()})
    if not signed:
        raise WalletError(f"none of the inputs of ({blknum}, {txindex}) are yours")
    emit({"blknum": blknum, "txindex": txindex, "confirm_sigs": signed})


def _exiting(s: Session, position: int) -> int | None:
    status = int(s.rootchain.functions.exits(position).call()[3])
    return status if status in (EXIT_PENDING, EXIT_FINALIZED) else None


def _check_value_not_exiting(s: Session, data: dict[str, Any], oindex: int) -> None:
    """The root chain pays one value once: say why it would refuse this exit, and what to do."""
    for entry in data.get("inputs", []):
        position = wire.utxo_position(int(entry["blknum"]), int(entry["txindex"]), int(entry["oindex"]))
        status = _exiting(s, position)
        if status == EXIT_PENDING:
            raise WalletError(f"input {position} of this transaction has a pending exit, so the root chain refuses "
                              f"yours: challenge it first (plasma-client challenge {position}), then exit again")
        if status == EXIT_FINALIZED:
            raise WalletError(f"input {position} of this transaction was exited and paid: "
                              "this output's value already left the chain")
    spent = s.operator.utxo(int(data["blknum"]), int(data["txindex"]), oindex) or {}
    where = spent.get("spent_by")
    if where and any(_exiting(s, wire.utxo_position(int(where["blknum"]), int(where["txindex"]), o)) for o in (0, 1)):
        raise WalletError(f"this output was spent by the transaction at ({where['blknum']}, {where['txindex']}), "
                          "whose output is exiting: the root chain refuses a second exit of the same value")


def _final_tx(operator: OperatorClient, blknum: int, txindex: int) -> dict[str, Any] | None:
    data = operator.tx(blknum, txindex)
    if data is None:
        raise WalletError(f"the operator has no transaction at ({blknum}, {txindex})")
    return data if data.get("final") else None


def _wait_for_credit(s: Session, blknum: int, mined_in: int, timeout: float) -> None:
    """Until the operator credits the deposit: it acts `confirmations` blocks after the deposit's."""
    confirmations, watch = s.confirmations(), ChainWatch(s.w3)
    target = mined_in + confirmations

    def progress() -> str:
        head = watch.refresh()
        if head < target:
            return f"waiting for block {head + 1} of {target} ({confirmations} confirmations)"
        return f"root chain at block {head}, {confirmations} confirmations reached: waiting for the operator"

    wait_for(f"deposit block {blknum}", lambda: s.operator.utxo(blknum, 0, 0), timeout, progress=progress,
             advice=lambda: watch.advice(f"is plasma-operator running? see {s.operator_url}/health"))


def _wait_for_final(s: Session, blknum: int, txindex: int, timeout: float) -> dict[str, Any]:
    """Until the block holding (blknum, txindex) is on the root chain with the operator's confirmations."""
    confirmations, watch = s.confirmations(), ChainWatch(s.w3)

    def progress() -> str:
        status = (s.operator.block(blknum) or {}).get("status", "unknown")
        return (f"the operator's block is {status}; root chain at block {watch.refresh()} "
                f"(final {confirmations} confirmations after its submitBlock)")

    return wait_for(f"block {blknum}", lambda: _final_tx(s.operator, blknum, txindex), timeout, progress=progress,
                    advice=lambda: watch.advice(f"is plasma-operator running and submitting blocks? "
                                                f"see {s.operator_url}/status"))


if __name__ == "__main__":
    main()
