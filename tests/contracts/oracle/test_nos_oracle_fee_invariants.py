"""Hypothesis stateful test of the oracle on anvil: whatever mix of requests,
deliveries (single, batched, failing callbacks, any gas price), cancels,
withdrawals and enclave key rotations happens, the oracle's ETH balance equals
what it owes (the fees of unsettled requests plus every account's credit), and
only the currently registered enclave key can deliver. Racing relays are in
the mix: batches that repeat ids or carry settled or unknown ones deliver each
pending id once and skip the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from eth_account import Account
from eth_utils import keccak
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dccn_common.contracts import transact
from dccn_deploy.parts.oracle import OracleParams
from dccn_devtools.anvil import Anvil
from nos_enclave.crypto import sign_digest
from nos_enclave.protocol import response_digest
from tests.contracts.oracle.conftest import (
    DELIVERY_OVERHEAD,
    ENCLAVE_KEY,
    MEASUREMENT,
    OTHER_KEY,
    PARAMS,
    PRICE_DATA,
    REQUEST_TTL,
    compiled_callback,
    revert_reason,
)

GWEI = 10**9


class FeeAccounting(RuleBasedStateMachine):
    anvil: ClassVar[Anvil]
    roles: ClassVar[Any]

    oracle: ClassVar[Any]
    reverter: ClassVar[str]
    recorder: ClassVar[str]

    @classmethod
    def set_up_oracle(cls, anvil: Anvil, roles: Any, create_parts: Callable[..., Any]) -> None:
        """The oracle part (from roles.deployer) on `anvil`, with the test enclave key registered."""
        cls.anvil, cls.roles = anvil, roles
        w3 = anvil.web3()
        cls.oracle = create_parts("oracle", oracle=OracleParams(REQUEST_TTL, DELIVERY_OVERHEAD)).at("NosOracle")
        transact(w3, cls.oracle.functions.registerEnclave(Account.from_key(ENCLAVE_KEY).address, MEASUREMENT),
                 sender=roles.deployer.address)
        deployed = []
        for kind in ("reverter", "recorder"):
            out = compiled_callback(kind)
            receipt = transact(w3, w3.eth.contract(abi=out["abi"], bytecode=out["bytecode"]).constructor(),
                               sender=roles.deployer.address)
            deployed.append(receipt["contractAddress"])
        cls.reverter, cls.recorder = deployed

    @initialize()
    def start_from_fresh_oracle(self) -> None:
        self.snapshot = self.anvil.snapshot()  # each example starts from the freshly deployed oracle
        self.w3 = self.anvil.web3()
        roles = self.roles
        self.requesters = [roles.alice.address, roles.bob.address, roles.carol.address]
        self.operators = [roles.operator.address, roles.relayer.address]
        self.pending: dict[bytes, tuple[str, int, bytes, int]] = {}
        self.callbacks: dict[bytes, str] = {}
        self.settled: dict[bytes, bytes] = {}  # request id -> params hash, once delivered or cancelled
        self.credits: dict[str, int] = dict.fromkeys(self.requesters + self.operators, 0)
        self.chain_id = self.w3.eth.chain_id
        self.keys = [ENCLAVE_KEY, OTHER_KEY]  # keys[0] is registered by set_up_oracle
        self.now = int(self.w3.eth.get_block("latest")["timestamp"])

    def teardown(self) -> None:
        if hasattr(self, "snapshot"):
            self.anvil.revert(self.snapshot)

    def _send(self, call: Any, sender: str, *, value: int = 0, tip_gwei: int = 1) -> Any:
        tx = call.build_transaction({"from": sender, "value": value, "gas": 3_000_000,
                                     "maxFeePerGas": 300 * GWEI, "maxPriorityFeePerGas": tip_gwei * GWEI})
        receipt = self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_transaction(tx), poll_latency=0.01)
        assert receipt["status"] == 1
        self.now = int(receipt["blockTimestamp"], 16) if isinstance(receipt["blockTimestamp"], str) \
            else int(receipt["blockTimestamp"])
        return receipt

    def _response(self, request_id: bytes, key: bytes | None = None) -> tuple[bytes, bytes, bytes, bytes]:
        params_hash = self.pending[request_id][2] if request_id in self.pending else self.settled.get(
            request_id, keccak(PARAMS))
        digest = response_digest(self.chain_id, self.oracle.address, request_id, params_hash, PRICE_DATA)
        return request_id, params_hash, PRICE_DATA, sign_digest(key or self.keys[0], digest)

    def _check_deliveries(self, receipt: Any) -> None:
        for entry in self.oracle.events.Delivered().process_receipt(receipt):
            args = entry["args"]
            requester, fee, params_hash, _ = self.pending.pop(bytes(args["requestId"]))  # KeyError: paid twice
            self.settled[bytes(args["requestId"])] = params_hash
            assert args["payment"] + args["refund"] == fee  # a requester never pays more than its fee
            self.credits[requester] += args["refund"]
            self.credits[args["submitter"]] += args["payment"]

    # Callbacks: none, one that reverts, one that stores (may run out of gas), the requester itself (no code):
    # a requester's first separate callback lives in its account word, any other in a word of its own.
    @rule(who=st.integers(0, 2), limit=st.integers(0, 150_000), price_gwei=st.integers(1, 40),
          callback_kind=st.sampled_from(["none", "reverter", "recorder", "requester"]))
    def request(self, who: int, limit: int, price_gwei: int, callback_kind: str) -> None:
        requester = self.requesters[who]
        fee = (DELIVERY_OVERHEAD + limit) * price_gwei * GWEI
        callback = {"none": "0x" + "00" * 20, "reverter": self.reverter, "recorder": self.recorder,
                    "requester": requester}[callback_kind]
        receipt = self._send(self.oracle.functions.request(PARAMS, callback, limit), requester, value=fee)
        event = self.oracle.events.Request().process_receipt(receipt)[0]["args"]
        request_id = bytes(event["requestId"])
        self.pending[request_id] = (requester, fee, bytes(event["paramsHash"]), event["expiresAt"])
        self.callbacks[request_id] = callback

    @invariant()
    def every_pending_request_keeps_the_callback_it_named(self) -> None:
        if not hasattr(self, "snapshot"):
            return
        for request_id in list(self.pending)[-4:]:  # the newest few (insertion order): one read each
            record = self.oracle.functions.requests(request_id).call()
            assert (record[0], record[1].lower(), record[5]) == (
                self.pending[request_id][0], self.callbacks[request_id].lower(), 1)

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), operator=st.integers(0, 1), tip_gwei=st.integers(1, 80))
    def deliver(self, data: st.DataObject, operator: int, tip_gwei: int) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.pending)))
        if self._expired(request_id):
            return
        stale = self.oracle.functions.deliver(*self._response(request_id, self.keys[1]))
        assert "not a registered enclave" in revert_reason(stale, {"from": self.operators[operator], "gas": 10**6})
        receipt = self._send(self.oracle.functions.deliver(*self._response(request_id)), self.operators[operator],
                             tip_gwei=tip_gwei)
        self._check_deliveries(receipt)

    @precondition(lambda self: len(self.pending) >= 2)
    @rule(data=st.data(), operator=st.integers(0, 1))
    def deliver_batch(self, data: st.DataObject, operator: int) -> None:
        ids = data.draw(st.lists(st.sampled_from(sorted(self.pending)), min_size=1, max_size=6, unique=True))
        receipt = self._send(self.oracle.functions.deliverBatch([self._response(i) for i in ids]),
                             self.operators[operator])
        self._check_deliveries(receipt)

    @precondition(lambda self: self.pending or self.settled)
    @rule(data=st.data(), operator=st.integers(0, 1), unknown=st.booleans())
    def deliver_racing_batch(self, data: st.DataObject, operator: int, unknown: bool) -> None:
        """A batch as a relay that lost races sends it: repeated, settled and unknown ids among pending ones."""
        ids = data.draw(st.lists(st.sampled_from(sorted(self.pending) + sorted(self.settled)), min_size=1,
                                 max_size=6))
        if unknown:
            ids.insert(data.draw(st.integers(0, len(ids))), keccak(b"never requested" + bytes([len(ids)])))
        was_pending = set(self.pending) & set(ids)
        receipt = self._send(self.oracle.functions.deliverBatch([self._response(i) for i in ids]),
                             self.operators[operator])
        self._check_deliveries(receipt)
        delivered = [bytes(e["args"]["requestId"]) for e in self.oracle.events.Delivered().process_receipt(receipt)]
        skipped = self.oracle.events.DeliverySkipped().process_receipt(receipt)
        assert len(delivered) == len(set(delivered)) and set(delivered) <= was_pending
        assert len(delivered) + len(skipped) == len(ids)  # every entry either delivered or skipped
        for entry in skipped:
            request_id = bytes(entry["args"]["requestId"])
            if request_id in self.pending:  # skipped while pending: only because it expired
                assert entry["args"]["status"] == 1 and self._expired(request_id)

    @rule()
    def rotate_enclave_key(self) -> None:
        old, new = (Account.from_key(k).address for k in self.keys)
        self._send(self.oracle.functions.rotateEnclave(old, new, MEASUREMENT), self.roles.deployer.address)
        self.keys.reverse()

    @rule()
    def time_passes(self) -> None:
        self.anvil.warp(REQUEST_TTL // 2 + 1)
        self.now = int(self.w3.eth.get_block("latest")["timestamp"])

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.pending)))
        if not self._expired(request_id):
            return
        requester, fee, params_hash, _ = self.pending.pop(request_id)
        self.settled[request_id] = params_hash
        receipt = self._send(self.oracle.functions.cancel(request_id), requester)
        assert self.oracle.events.Cancelled().process_receipt(receipt)[0]["args"]["refund"] == fee
        self.credits[requester] += fee

    @rule(who=st.integers(0, 4))
    def withdraw(self, who: int) -> None:
        account = (self.requesters + self.operators)[who]
        assert self.oracle.functions.credits(account).call() == self.credits[account]
        if self.credits[account] > 0:
            self._send(self.oracle.functions.withdraw(account), account)
            self.credits[account] = 0

    def _expired(self, request_id: bytes) -> bool:
        return self.now + 1 > self.pending[request_id][3]

    @invariant()
    def balance_equals_what_is_owed(self) -> None:
        if not hasattr(self, "snapshot"):
            return
        owed = sum(fee for _, fee, _, _ in self.pending.values()) + sum(self.credits.values())
        assert self.w3.eth.get_balance(self.oracle.address) == owed


def test_fee_accounting__balance_always_equals_what_is_owed(chain: Anvil, roles: Any,
                                                             create_parts: Callable[..., Any]) -> None:
    FeeAccounting.set_up_oracle(chain, roles, create_parts)
    run_state_machine_as_test(FeeAccounting)
