"""The seeded workload the faults hit, and the checks made from the chains alone.

Each item is one thing a user asks of the system: a Plasma deposit + transfer + a
dishonest exit of the spent deposit (the operator must submit the block, the watcher
must challenge), an oracle request (one delivery), a bridge transfer each way (one
release), a deal opened and settled, an enode address change (one signed update).
`Checker` then counts each item's effects in events read with web3; the services'
databases are never consulted.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from web3.logs import DISCARD

from dccn_common.contracts import transact
from nos_enclave.protocol import Params
from plasma_client.remote import OperatorApiError, OperatorClient
from plasma_client.wallet import Coin, ExitArgs, build_transfer, deposit_exit_args, exit_args_from_api
from plasma_core import wire
from tests.faults.harness import ANKR_CHAIN_ID, ETHEREUM_CHAIN_ID, System
from token_bridge.transfer import Transfer

ITEM_KINDS = ("plasma", "oracle", "bridge_to_ankr", "bridge_to_ethereum", "deal", "enode")
ETHER = 10**18
ANKR = 10**18
PLASMA_DEPOSIT = ETHER // 10
MAX_GAS_PRICE = 50 * 10**9
ZERO = "0x" + "00" * 20
ITEM_WAIT = 60.0
MAX_BRIDGE_AMOUNT = 500 * ANKR  # far below the bridge's hold threshold
BRIDGE_CREDIT = 20_000 * ANKR


@dataclass
class Item:
    kind: str
    segment: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    item: Item
    effects: int  # exactly 1 is right; 0 is lost, more is repeated
    what: str


def _retry(check: Callable[[], Any], timeout: float = ITEM_WAIT) -> Any:
    """Poll a service API across its restarts until `check` returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except (OperatorApiError, httpx.HTTPError):
            pass  # the service is down or restarting: a user would retry
        time.sleep(0.3)
    return None


class Workload:
    def __init__(self, system: System, rng: random.Random) -> None:
        self.system = system
        self.rng = rng
        self.items: list[Item] = []
        eth, ankr = system.eth, system.ankr
        self.rootchain = eth.contract("RootChain")
        self.oracle = eth.contract("NosOracle")
        self.token = eth.contract("AnkrToken")
        self.foreign = eth.contract("ForeignBridge")
        self.home = ankr.contract("HomeBridge")
        self.escrow = eth.contract("DccnDealEscrow")
        self.api = OperatorClient(system.operator_url, timeout=10)
        self._enode_hosts = 0
        self._native_credit = 0
        self._prepare()

    def _prepare(self) -> None:
        """What the users need before the run: tokens, approvals, registered parties."""
        w3, s = self.system.eth.w3, self.system
        deployer, alice, tenant = s.actor("deployer"), s.actor("alice"), s.actor("tenant")
        transact(w3, self.token.functions.transfer(alice.address, 1_000_000 * ANKR), sender=deployer)
        transact(w3, self.token.functions.approve(self.foreign.address, 1_000_000 * ANKR), sender=alice)
        transact(w3, self.token.functions.transfer(tenant.address, 1_000_000 * ANKR), sender=deployer)
        transact(w3, self.token.functions.approve(self.escrow.address, 1_000_000 * ANKR), sender=tenant)
        for role in ("provider", "app_provider"):
            if not self.escrow.functions.party_id(s.actor(role).address).call():
                transact(w3, self.escrow.functions.register_party(), sender=s.actor(role))
        # bob's native ANKR must come through the bridge before he can send it back.
        transact(w3, self.foreign.functions.relayTokens(s.actor("bob").address, BRIDGE_CREDIT), sender=alice)
        deadline = time.monotonic() + ITEM_WAIT
        while not self.home.events.TransferExecuted().get_logs(from_block=0):
            if time.monotonic() > deadline:
                raise RuntimeError("the bridge did not release the setup transfer; see bridge-*.log")
            time.sleep(0.5)
        self._native_credit = BRIDGE_CREDIT

    def run_item(self, segment: str, kind: str | None = None) -> Item:
        kind = kind or self.rng.choice(ITEM_KINDS)
        if kind == "bridge_to_ethereum" and self._native_credit < MAX_BRIDGE_AMOUNT:
            kind = "bridge_to_ankr"
        item = Item(kind, segment)
        self.items.append(item)
        getattr(self, f"_{kind}")(item)
        return item

    # -- items -------------------------------------------------------------------------

    def _plasma(self, item: Item) -> None:
        s, w3 = self.system, self.system.eth.w3
        alice, bob = s.actor("alice"), s.actor("bob")
        receipt = transact(w3, self.rootchain.functions.deposit(), sender=alice, value=PLASMA_DEPOSIT)
        blknum = int(self.rootchain.events.Deposit().process_receipt(receipt)[0]["args"]["blknum"])
        item.data["deposit_blknum"] = blknum
        if not _retry(lambda: self.api.utxo(blknum, 0, 0)):
            item.data["stuck"] = "the operator never credited the deposit"
            return
        tx = build_transfer([Coin(blknum, 0, 0, PLASMA_DEPOSIT)], alice.address, bob.address,
                            PLASMA_DEPOSIT * 6 // 10, 0, alice.key)
        sent = _retry(lambda: self.api.submit(tx))
        if not sent:
            item.data["stuck"] = "the operator did not accept the transfer"
            return
        child, txindex = int(sent["blknum"]), int(sent["txindex"])
        item.data.update(child_blknum=child, txindex=txindex)
        data = _retry(lambda: (lambda d: d if d and d["final"] else None)(self.api.tx(child, txindex)))
        if not data:
            item.data["stuck"] = f"child block {child} never became final"
            return
        item.data["root"] = data["root"]
        leaf, root = bytes.fromhex(data["hash"][2:]), bytes.fromhex(data["root"][2:])
        _retry(lambda: self.api.confirm(child, txindex, 0, wire.confirm_sign(leaf, root, alice.key)))
        # alice tries to exit the deposit she spent: the watcher must challenge it, once.
        cheat = deposit_exit_args(blknum, alice.address, PLASMA_DEPOSIT)
        bond = int(self.rootchain.functions.exitBond().call())
        transact(w3, cheat.call(self.rootchain), sender=alice, value=bond)
        item.data["cheat_exit_id"] = cheat.exit_id

    def honest_exit(self, item: Item) -> ExitArgs | None:
        """bob's exit of the output alice's transfer gave him (needs her published confirm)."""
        if "cheat_exit_id" not in item.data:
            return None
        on_chain = bytes(self.rootchain.functions.getChildChain(item.data["child_blknum"]).call()[0])
        challenged = self.rootchain.events.ExitChallenged().get_logs(
            from_block=0, argument_filters={"exitId": item.data["cheat_exit_id"]})
        if "0x" + on_chain.hex() != item.data["root"] or not challenged:
            # Its block never reached the root chain, or the spent input's exit still stands
            # (the root chain refuses a second exit of one value): lost, as its segment reports.
            return None
        data = _retry(lambda: self.api.tx(item.data["child_blknum"], item.data["txindex"]))
        return exit_args_from_api(data, 0) if data else None

    def _oracle(self, item: Item) -> None:
        assert self.system.price_source is not None
        params = Params(self.system.price_source.url(), "json:data.price", "uint256", 2).to_json()
        fee = int(self.oracle.functions.requestFee(0, MAX_GAS_PRICE).call())
        receipt = transact(self.system.eth.w3, self.oracle.functions.request(params, ZERO, 0),
                           sender=self.system.actor("dapp"), value=fee)
        event = self.oracle.events.Request().process_receipt(receipt, errors=DISCARD)[0]
        item.data["request_id"] = bytes(event["args"]["requestId"])

    def _bridge_to_ankr(self, item: Item) -> None:
        s = self.system
        amount = self.rng.randint(1, MAX_BRIDGE_AMOUNT // ANKR) * ANKR
        receipt = transact(s.eth.w3, self.foreign.functions.relayTokens(s.actor("bob").address, amount),
                           sender=s.actor("alice"))
        item.data.update(tx_hash=receipt["transactionHash"], amount=amount)

    def _bridge_to_ethereum(self, item: Item) -> None:
        s = self.system
        amount = self.rng.randint(1, MAX_BRIDGE_AMOUNT // ANKR) * ANKR
        self._native_credit -= amount
        receipt = transact(s.ankr.w3, self.home.functions.relayNative(s.actor("alice").address),
                           sender=s.actor("bob"), value=amount)
        item.data.update(tx_hash=receipt["transactionHash"], amount=amount)

    def _deal(self, item: Item) -> None:
        s, w3 = self.system, self.system.eth.w3
        call = self.escrow.functions.open_deal(s.actor("provider").address, s.actor("app_provider").address,
                                               10**15, 86_400, 100 * ANKR, 95)
        receipt = transact(w3, call, sender=s.actor("tenant"))
        deal_id = int(self.escrow.events.DealOpened().process_receipt(receipt)[0]["args"]["deal_id"])
        opened_at = int(w3.eth.get_block(receipt["blockNumber"])["timestamp"])
        while int(w3.eth.get_block("latest")["timestamp"]) <= opened_at:
            time.sleep(0.3)  # settle streams up to now: it needs at least a second to stream
        transact(w3, self.escrow.functions.settle(deal_id), sender=s.actor("provider"))
        item.data["deal_id"] = deal_id

    def _enode(self, item: Item) -> None:
        self._enode_hosts += 1
        host = f"198.51.100.{self._enode_hosts}"
        self.system.enode_address_file.write_text(host + "\n")
        item.data["host"] = host


class Checker:
    """Counts each item's effects on the chains as they are now."""

    def __init__(self, workload: Workload) -> None:
        self.w = workload
        self.system = workload.system

    def outcomes(self, items: list[Item]) -> list[Outcome]:
        results = []
        enode_items = [i for i in items if i.kind == "enode"]
        for item in items:
            if item.kind == "enode":
                results.append(self._enode(item, last=item is enode_items[-1]))
            else:
                results.append(getattr(self, f"_{item.kind}")(item))
        return results

    def anchor_block(self, item: Item, timeout: float = 30.0) -> int | None:
        """The Ethereum block of a Plasma item's submitBlock, once its dishonest exit was
        challenged (so a reorg back to it removes confirmed service transactions)."""
        d, rootchain = item.data, self.w.rootchain
        if "cheat_exit_id" not in d:
            return None
        deadline = time.monotonic() + timeout
        while not rootchain.events.ExitChallenged().get_logs(from_block=0,
                                                               argument_filters={"exitId": d["cheat_exit_id"]}):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.5)
        submitted = rootchain.events.BlockSubmitted().get_logs(from_block=0,
                                                               argument_filters={"blknum": d["child_blknum"]})
        return int(submitted[0]["blockNumber"]) if submitted else None

    def _plasma(self, item: Item) -> Outcome:
        rootchain, d = self.w.rootchain, item.data
        if "stuck" in d:
            return Outcome(item, 0, d["stuck"])
        deposits = rootchain.events.Deposit().get_logs(from_block=0, argument_filters={"blknum": d["deposit_blknum"]})
        if len(deposits) != 1:
            return Outcome(item, len(deposits), f"deposit {d['deposit_blknum']}: {len(deposits)} Deposit events")
        on_chain = "0x" + bytes(rootchain.functions.getChildChain(d["child_blknum"]).call()[0]).hex()
        roots = [e for e in rootchain.events.BlockSubmitted().get_logs(from_block=0)
                 if "0x" + bytes(e["args"]["root"]).hex() == d["root"]]
        if on_chain != d["root"]:
            return Outcome(item, 0, f"child block {d['child_blknum']}: root on chain {on_chain[:12]}, not the "
                                    f"operator's {d['root'][:12]}")
        if len(roots) != 1:
            return Outcome(item, len(roots), f"child block root {d['root'][:12]} submitted {len(roots)} times")
        if "cheat_exit_id" not in d:
            return Outcome(item, 0, "the dishonest exit was never started")
        challenges = rootchain.events.ExitChallenged().get_logs(from_block=0,
                                                                 argument_filters={"exitId": d["cheat_exit_id"]})
        return Outcome(item, len(challenges), f"dishonest exit {d['cheat_exit_id']}: {len(challenges)} challenges")

    def _oracle(self, item: Item) -> Outcome:
        request_id = item.data["request_id"]
        requests = self.w.oracle.events.Request().get_logs(from_block=0, argument_filters={"requestId": request_id})
        delivered = self.w.oracle.events.Delivered().get_logs(from_block=0, argument_filters={"requestId": request_id})
        if len(requests) != 1:
            return Outcome(item, len(requests), f"request {request_id.hex()[:12]}: {len(requests)} Request events")
        return Outcome(item, len(delivered), f"request {request_id.hex()[:12]}: {len(delivered)} deliveries")

    def _bridge(self, item: Item, source: Any, target: Any, source_chain_id: int) -> Outcome:
        w3 = source.w3
        receipt = w3.eth.get_transaction_receipt(item.data["tx_hash"])
        logs = [e for e in source.events.TransferInitiated().process_receipt(receipt, errors=DISCARD)]
        if len(logs) != 1:
            return Outcome(item, len(logs), f"source tx {item.data['tx_hash'].hex()[:12]}: {len(logs)} initiations")
        log = logs[0]
        transfer = Transfer(source_chain_id, source.address, log["transactionHash"].to_0x_hex(), int(log["logIndex"]),
                            log["args"]["recipient"], int(log["args"]["amount"]))
        key = target.functions.transferKey(transfer.as_tuple()).call()
        executed = target.events.TransferExecuted().get_logs(from_block=0, argument_filters={"key": key})
        return Outcome(item, len(executed), f"transfer {key.hex()[:12]}: {len(executed)} releases")

    def _bridge_to_ankr(self, item: Item) -> Outcome:
        return self._bridge(item, self.w.foreign, self.w.home, ETHEREUM_CHAIN_ID)

    def _bridge_to_ethereum(self, item: Item) -> Outcome:
        return self._bridge(item, self.w.home, self.w.foreign, ANKR_CHAIN_ID)

    def _deal(self, item: Item) -> Outcome:
        deal_id, escrow = item.data["deal_id"], self.w.escrow
        opened = escrow.events.DealOpened().get_logs(from_block=0, argument_filters={"deal_id": deal_id})
        settled = escrow.events.DealSettled().get_logs(from_block=0, argument_filters={"deal_id": deal_id})
        if len(opened) != 1:
            return Outcome(item, len(opened), f"deal {deal_id}: opened {len(opened)} times")
        return Outcome(item, len(settled), f"deal {deal_id}: settled {len(settled)} times")

    def _enode(self, item: Item, *, last: bool) -> Outcome:
        ingress = self.system.eth.contract("EnodeIngress")
        updates = ingress.events.EndpointUpdated().get_logs(from_block=0)
        to_host = [u for u in updates if u["args"]["new_host"] == item.data["host"]]
        if len(to_host) > 1:
            return Outcome(item, len(to_host), f"host {item.data['host']}: {len(to_host)} updates")
        if last:
            # An address superseded before it was pushed may be skipped; the last one may not.
            current = updates[-1]["args"]["new_host"] if updates else None
            return Outcome(item, int(current == item.data["host"]), f"host {item.data['host']}: registry has {current}")
        return Outcome(item, 1, f"host {item.data['host']}: {len(to_host)} updates (superseded)")

    # -- invariants over the whole run ---------------------------------------------------

    def invariant_problems(self) -> list[str]:
        return self.bridge_problems() + self.nonce_problems()

    def bridge_problems(self) -> list[str]:
        """ANKR locked on Ethereum == native outside the home bridge + in flight."""
        w = self.w
        supply = int(self.system.ankr.manifest.params["ankr"]["bridge"]["native_supply"] * ANKR)
        locked = int(w.token.functions.balanceOf(w.foreign.address).call())
        outside = supply - int(self.system.ankr.w3.eth.get_balance(w.home.address))
        in_flight = (self._pending(w.foreign, w.home, ETHEREUM_CHAIN_ID)
                     + self._pending(w.home, w.foreign, ANKR_CHAIN_ID))
        problems = []
        if locked != outside + in_flight:
            problems.append(f"bridge: locked {locked} != outside {outside} + in flight {in_flight}")
        if in_flight:
            problems.append(f"bridge: {in_flight} wei of ANKR still in flight")
        return problems

    def _pending(self, source: Any, target: Any, source_chain_id: int) -> int:
        executed = {bytes(e["args"]["key"]) for e in target.events.TransferExecuted().get_logs(from_block=0)}
        total = 0
        for log in source.events.TransferInitiated().get_logs(from_block=0):
            transfer = Transfer(source_chain_id, source.address, log["transactionHash"].to_0x_hex(),
                                int(log["logIndex"]), log["args"]["recipient"], int(log["args"]["amount"]))
            if bytes(target.functions.transferKey(transfer.as_tuple()).call()) not in executed:
                total += transfer.amount
        return total

    def nonce_problems(self) -> list[str]:
        """Every service key: nonces contiguous and nothing left waiting in the mempool."""
        problems = []
        for name, chain in self.system.chains.items():
            pool = chain.anvil.rpc("txpool_content")
            waiting = {k.lower(): v for part in ("pending", "queued") for k, v in (pool.get(part) or {}).items()}
            for address in sorted(self.system.service_signers(name)):
                mined = chain.w3.eth.get_transaction_count(address, "latest")
                pending = chain.w3.eth.get_transaction_count(address, "pending")
                stuck = sorted(int(n) for n in waiting.get(address.lower(), {}))
                if pending != mined or stuck:
                    problems.append(f"nonce gap: {address[:10]} on {name}: mined up to {mined}, "
                                    f"pending {pending}, waiting nonces {stuck}")
        return problems

    def exit_problems(self) -> list[str]:
        """No Plasma exit paid twice, and no challenged exit paid at all."""
        rootchain = self.w.rootchain
        paid = [int(e["args"]["exitId"]) for e in rootchain.events.ExitFinalized().get_logs(from_block=0)]
        challenged = {int(e["args"]["exitId"]) for e in rootchain.events.ExitChallenged().get_logs(from_block=0)}
        problems = [f"plasma: exit {i} paid {paid.count(i)} times" for i in sorted(set(paid)) if paid.count(i) > 1]
        problems += [f"plasma: challenged exit {i} was paid" for i in sorted(challenged & set(paid))]
        return problems
