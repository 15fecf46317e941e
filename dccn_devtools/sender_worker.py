"""A leased sender process, for the failover test and benchmark (never a service).

Usage: SENDER_KEY=0x.. python -m dccn_devtools.sender_worker RPC_URL DSN HOLDER LEASE_SECONDS
           [--ready PATH] [--log PATH]

Drives the outbox with `TxSender.process()` every 50 ms (leader or standby, as the lease
decides). `--ready` is created after the first pass, so the caller knows it is up; each line
of `--log` is "<unix time> <tx hash>" for a broadcast this process made.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from eth_account import Account
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3

from dccn_common.sender import Lease, TxSender
from dccn_common.store import open_db


class LoggingSender(TxSender):
    log_path: str | None = None

    def _broadcast(self, raw: bytes) -> None:
        super()._broadcast(raw)  # raises LeaseLost before sending when the lease is not ours
        if self.log_path:
            with open(self.log_path, "a") as handle:
                handle.write(f"{time.time():.6f} {Web3.keccak(HexBytes(raw)).to_0x_hex()}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rpc_url")
    parser.add_argument("dsn")
    parser.add_argument("holder")
    parser.add_argument("lease_seconds", type=float)
    parser.add_argument("--ready")
    parser.add_argument("--log")
    args = parser.parse_args()
    w3 = Web3(HTTPProvider(args.rpc_url))
    db = open_db(args.dsn)
    account = Account.from_key(os.environ["SENDER_KEY"])
    lease = Lease(db, int(w3.eth.chain_id), account.address, holder=args.holder, seconds=args.lease_seconds)
    sender = LoggingSender(w3, db, account, lease=lease)
    sender.log_path = args.log
    sender.process()
    if args.ready:
        Path(args.ready).touch()
    while True:
        sender.process()
        time.sleep(0.05)


if __name__ == "__main__":
    main()
