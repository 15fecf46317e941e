"""One leased sender process for bench_store's failover trials (not a benchmark itself).

Usage: SENDER_KEY=0x.. python -m bench.failover_worker RPC_URL DSN HOLDER LEASE_SECONDS READY_PATH
Drives the outbox with `TxSender.process()` every 50 ms (leader or standby, as the lease
decides) and creates READY_PATH after its first pass, so the bench knows it is up.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from eth_account import Account
from web3 import HTTPProvider, Web3

from dccn_common.sender import Lease, TxSender
from dccn_common.store import open_db


def main() -> None:
    rpc_url, dsn, holder, seconds, ready_path = sys.argv[1:6]
    w3 = Web3(HTTPProvider(rpc_url))
    db = open_db(dsn)
    account = Account.from_key(os.environ["SENDER_KEY"])
    lease = Lease(db, int(w3.eth.chain_id), account.address, holder=holder, seconds=float(seconds))
    sender = TxSender(w3, db, account, lease=lease)
    sender.process()
    Path(ready_path).touch()
    while True:
        sender.process()
        time.sleep(0.05)


if __name__ == "__main__":
    main()
