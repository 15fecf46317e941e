"""A small typed client of the operator's HTTP API, used by the CLI, the watcher and tests."""

from __future__ import annotations

from typing import Any

import httpx

from plasma_core import wire


class OperatorApiError(RuntimeError):
    """The operator refused a request (4xx) or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


class OperatorClient:
    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, *, json: Any = None, missing_ok: bool = False) -> Any:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.HTTPError as err:
            raise OperatorApiError(f"operator at {self.url} unreachable: {type(err).__name__}: {err}") from None
        if missing_ok and response.status_code == 404:
            return None
        try:
            body = response.json()
        except ValueError:
            body = {"reason": response.text[:200]}
        if response.status_code >= 400:
            reason = body.get("reason", body) if isinstance(body, dict) else body
            raise OperatorApiError(f"operator refused {method} {path} ({response.status_code}): {reason}",
                                   status=response.status_code, body=body if isinstance(body, dict) else None)
        return body

    def submit(self, tx: wire.Transaction | bytes) -> dict[str, Any]:
        raw = wire.encode(tx) if isinstance(tx, wire.Transaction) else tx
        return dict(self._request("POST", "/tx", json={"tx": "0x" + raw.hex()}))

    def submit_batch(self, raws: list[bytes]) -> list[dict[str, Any]]:
        body = self._request("POST", "/txs", json={"txs": ["0x" + raw.hex() for raw in raws]})
        return list(body["accepted"])

    def block(self, blknum: int) -> dict[str, Any] | None:
        return self._request("GET", f"/block/{blknum}", missing_ok=True)  # type: ignore[no-any-return]

    def tx(self, blknum: int, txindex: int) -> dict[str, Any] | None:
        return self._request("GET", f"/tx/{blknum}/{txindex}", missing_ok=True)  # type: ignore[no-any-return]

    def utxo(self, blknum: int, txindex: int, oindex: int) -> dict[str, Any] | None:
        return self._request("GET", f"/utxo/{blknum}/{txindex}/{oindex}", missing_ok=True)  # type: ignore[no-any-return]

    def utxos(self, owner: str) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/utxos/{owner}")["utxos"])

    def status(self) -> dict[str, Any]:
        return dict(self._request("GET", "/status"))

    def confirm(self, blknum: int, txindex: int, slot: int, sig: bytes) -> dict[str, Any]:
        return dict(self._request("POST", "/confirm", json={"blknum": blknum, "txindex": txindex, "slot": slot,
                                                            "sig": "0x" + sig.hex()}))
