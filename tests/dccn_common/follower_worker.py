"""A follower process for the crash test: records every Transfer it is handed.

Usage: python follower_worker.py RPC_URL TOKEN_ADDRESS DB_PATH
Each event is handled slowly, so the test can SIGKILL it mid-stream.
"""

from __future__ import annotations

import sys
import threading
import time

from web3 import HTTPProvider, Web3

from dccn_common.follower import ChainEvent, ChainFollower
from dccn_common.store import open_db
from dccn_devtools.contracts import load_artifact
from tests.dccn_common.conftest import RECORD_SCHEMA


def main() -> None:
    rpc_url, token_address, db_path = sys.argv[1:4]
    w3 = Web3(HTTPProvider(rpc_url))
    db = open_db(db_path, RECORD_SCHEMA)
    token = w3.eth.contract(address=Web3.to_checksum_address(token_address), abi=load_artifact("AnkrToken").abi)
    follower = ChainFollower(w3, db, "crash-test", chunk_size=7)

    @follower.on(token, "Transfer")
    def record(event: ChainEvent, tx) -> None:
        tx.execute("INSERT INTO seen VALUES (?, ?, ?, ?)",
                   (event.block_number, event.log_index, event.args["receiver"], str(event.args["value"])))
        time.sleep(0.03)

    stop = threading.Event()
    follower.run(stop, interval=0.05)


if __name__ == "__main__":
    main()
