"""A leased sender process for the failover test: drives the outbox, logs every broadcast.

Usage: SENDER_KEY=0x.. python sender_worker.py RPC_URL DSN HOLDER LEASE_SECONDS LOG_PATH
Each line of LOG_PATH is "<unix time> <tx hash>" for a broadcast this process made.
"""

from __future__ import annotations

import os
import sys
import time

from eth_account import Account
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3

from dccn_common.sender import Lease, TxSender
from dccn_common.store import open_db


class LoggingSender(TxSender):
    log_path = ""

    def _broadcast(self, raw: bytes) -> None:
        super()._broadcast(raw)  # raises LeaseLost before sending when the lease is not ours
        with open(self.log_path, "a") as handle:
            handle.write(f"{time.time():.6f} {Web3.keccak(HexBytes(raw)).to_0x_hex()}\n")


def main() -> None:
    rpc_url, dsn, holder, seconds, log_path = sys.argv[1:6]
    w3 = Web3(HTTPProvider(rpc_url))
    db = open_db(dsn)
    account = Account.from_key(os.environ["SENDER_KEY"])
    lease = Lease(db, int(w3.eth.chain_id), account.address, holder=holder, seconds=float(seconds))
    sender = LoggingSender(w3, db, account, lease=lease)
    sender.log_path = log_path
    while True:
        sender.process()
        time.sleep(0.05)


if __name__ == "__main__":
    main()
