"""A real anvil node on loopback, for tests, benchmarks and the demo.

The binary comes from the npm package @foundry-rs/anvil-linux-amd64 (pinned in
package.json), found in node_modules/.bin; nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import httpx
from web3 import HTTPProvider, Web3

from dccn_common import PROJECT_ROOT
from dccn_devtools.anvil_ticker import tick_blocks
from dccn_devtools.mined_on_return import MinedOnReturn
from dccn_devtools.ports import free_port
from dccn_devtools.processes import stop_process

# anvil's (and ape's) default development mnemonic; its accounts are funded and unlocked.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_CHAIN_ID = 31337


class AnvilError(RuntimeError):
    """anvil could not be found, started or talked to."""


def find_anvil_binary() -> str:
    """ANVIL_BIN, then the project's node_modules, then PATH."""
    candidates = [
        os.environ.get("ANVIL_BIN", ""),
        str(PROJECT_ROOT / "node_modules" / ".bin" / "anvil"),
        shutil.which("anvil") or "",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise AnvilError("anvil not found: run `npm ci` in the project root (package.json pins it) or set ANVIL_BIN")


def port_in_use(host: str, port: int) -> bool:
    """Whether something already accepts connections on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


# What anvil prints once it holds its port; the proof that an answer comes from our process.
LISTENING = b"Listening on"


class Anvil:
    """One anvil process. Use as a context manager, or call start() / stop()."""

    def __init__(
        self,
        *,
        port: int | None = None,
        chain_id: int = DEFAULT_CHAIN_ID,
        host: str = "127.0.0.1",
        accounts: int = 10,
        balance_eth: int = 10_000,
        block_time: float | None = None,
        gas_limit: int | None = None,
        mnemonic: str = DEFAULT_MNEMONIC,
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AnvilError("anvil is only ever bound to loopback")
        self.host = host
        self.port = port or free_port(host)
        self.chain_id = chain_id
        self.accounts = accounts
        self.balance_eth = balance_eth
        self.block_time = block_time
        self.gas_limit = gas_limit
        self.mnemonic = mnemonic
        self.extra_args = list(extra_args)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._own_log: Path | None = None  # a temporary output file when no log_path was given
        self._log_offset = 0
        self._client = httpx.Client(timeout=30)
        self._request_id = 0
        self._reverted = False  # a snapshot was reverted: reorgs are refused from then on

    # -- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            find_anvil_binary(),
            "--host", self.host,
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
            "--balance", str(self.balance_eth),
            "--mnemonic", self.mnemonic,
        ]  # fmt: skip
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        if self.gas_limit:
            cmd += ["--gas-limit", str(self.gas_limit)]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> Anvil:
        """Start anvil and return once *this* process holds the port and answers.

        A port that already answers is refused up front: otherwise the new anvil dies on the
        bind while the old one answers, and the caller lands on someone else's chain.
        """
        if self._process is not None:
            return self
        if port_in_use(self.host, self.port):
            raise AnvilError(f"port {self.port} is in use")
        self._process = subprocess.Popen(
            self.command(), stdout=self._open_log(), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise AnvilError(f"anvil exited with code {code} on port {self.port}{self._last_words()}")
            if self._listening() and self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise AnvilError(f"anvil did not answer on {self.url} within {timeout}s")

    def _open_log(self) -> Any:
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix=f"anvil-{self.port}-", suffix=".log")
            os.close(handle)
            self._own_log = Path(name)
        path = self.log_path or self._own_log
        assert path is not None
        self._log_offset = path.stat().st_size if path.exists() else 0  # an appended log: only this run counts
        self._log_file = open(path, "ab")  # noqa: SIM115 (kept open for the process)
        return self._log_file

    def _output(self) -> bytes:
        path = self.log_path or self._own_log
        if path is None or not path.exists():
            return b""
        with open(path, "rb") as log:
            log.seek(self._log_offset)
            return log.read(1 << 20)

    def _listening(self) -> bool:
        return LISTENING in self._output()

    def _last_words(self) -> str:
        lines = [line for line in self._output().decode(errors="replace").splitlines() if line.strip()]
        return f": {lines[-1].strip()[:200]}" if lines else ""

    def _answers(self) -> bool:
        try:
            return int(self.rpc("eth_chainId"), 16) == self.chain_id
        except (httpx.HTTPError, AnvilError, ValueError):
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        if self._own_log is not None:
            self._own_log.unlink(missing_ok=True)
            self._own_log = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- JSON-RPC ------------------------------------------------------------------

    def rpc(self, method: str, *params: Any) -> Any:
        self._request_id += 1
        response = self._client.post(
            self.url, json={"jsonrpc": "2.0", "id": self._request_id, "method": method, "params": list(params)}
        )
        body = response.json()
        if "error" in body:
            raise AnvilError(f"{method}: {body['error'].get('message', body['error'])}")
        return body["result"]

    def web3(self, *, mined_on_return: bool = True) -> Web3:
        """A client of this node. With `mined_on_return` (what tests want) a send returns once
        automined (see dccn_devtools.mined_on_return); benchmarks measuring raw send rates pass False."""
        w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 60}))
        if mined_on_return:
            w3.middleware_onion.add(MinedOnReturn, "mined_on_return")
        return w3

    # -- test controls --------------------------------------------------------------

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def warp(self, seconds: int) -> None:
        """Move time forward and mine one block carrying the new timestamp."""
        self.rpc("evm_increaseTime", hex(seconds))
        self.mine()

    def set_next_timestamp(self, timestamp: int) -> None:
        self.rpc("evm_setNextBlockTimestamp", hex(timestamp))

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        if not self.rpc("evm_revert", snapshot_id):
            raise AnvilError(f"snapshot {snapshot_id} could not be reverted")
        self._reverted = True

    def _check_reorg_allowed(self) -> None:
        # Seen on the pinned anvil: after evm_revert, the state history holds the reverted
        # branches' states under the same block numbers, and a later anvil_reorg/rollback can
        # load one of them (a contract deployed on the canonical chain had no code after it).
        if self._reverted:
            raise AnvilError("anvil: no reorg on a node that has reverted a snapshot (its state history "
                             "mixes the reverted branches); reorg on a fresh node")

    def reorg(self, depth: int, replacement_txs: Sequence[tuple[dict[str, Any], int]] = ()) -> None:
        """Replace the last `depth` blocks with new ones (different hashes).

        `replacement_txs` are (transaction request, block offset) pairs placed in the
        new blocks; without them the new blocks are empty, so everything the old ones
        held is gone from the chain.
        """
        self._check_reorg_allowed()
        self.rpc("anvil_reorg", depth, [[tx, offset] for tx, offset in replacement_txs])

    def rollback(self, depth: int) -> None:
        """Drop the last `depth` blocks without replacing them."""
        self._check_reorg_allowed()
        self.rpc("anvil_rollback", depth)

    def set_automine(self, enabled: bool) -> None:
        self.rpc("evm_setAutomine", enabled)

    def set_balance(self, address: str, wei: int) -> None:
        self.rpc("anvil_setBalance", address, hex(wei))

    def impersonate(self, address: str) -> None:
        self.rpc("anvil_impersonateAccount", address)

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def dev_accounts(self) -> list[str]:
        return [Web3.to_checksum_address(a) for a in self.rpc("eth_accounts")]


def dev_private_keys(count: int = 10, mnemonic: str = DEFAULT_MNEMONIC) -> list[str]:
    """Private keys of anvil's dev accounts (well known; for local chains only)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}").key.hex() for i in range(count)
    ]


def _spawn_ticker(url: str, every: float, anvil_pid: int) -> None:
    """A detached process that ticks blocks for a background anvil and ends with it."""
    subprocess.Popen([sys.executable, "-m", "dccn_devtools.anvil_ticker", url, str(every), str(anvil_pid)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


# From the shell a block comes every second besides one per transaction: services wait for
# confirmations, and on an automine-only chain nobody makes the blocks after the last transaction.
CLI_BLOCK_TIME = 1.0


@click.command(help="Start anvil on loopback (from the project's node_modules) and wait until it answers.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: a free one).")
@click.option("--chain-id", type=click.IntRange(1, 2**63 - 1), default=DEFAULT_CHAIN_ID, show_default=True)
@click.option("--block-time", type=click.FloatRange(0), default=CLI_BLOCK_TIME, show_default=True,
              help="Seconds between blocks, besides the one each transaction gets at once; 0: automine only.")
@click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the process id here and return once anvil answers (runs in the background).")
def main(port: int | None, chain_id: int, block_time: float, pid_file: Path | None) -> None:
    anvil = Anvil(port=port, chain_id=chain_id, log_path=Path(tempfile.gettempdir()) / f"anvil-{chain_id}.log")
    try:
        anvil.start()
    except AnvilError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    mining = f"automine and a block every {block_time:g}s" if block_time else "automine"
    click.echo(f"anvil chain {chain_id} at {anvil.url} ({mining})")
    assert anvil._process is not None
    if pid_file:
        pid_file.write_text(str(anvil._process.pid))
        if block_time:
            _spawn_ticker(anvil.url, block_time, anvil._process.pid)
        anvil._process = None  # leave it running in its own session
        return
    stop = threading.Event()
    if block_time:
        threading.Thread(target=tick_blocks, args=(anvil.url, block_time, stop), daemon=True).start()
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stop.set()
        anvil.stop()


if __name__ == "__main__":
    main()
