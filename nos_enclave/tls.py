"""An HTTPS GET whose TLS runs in memory (ssl.MemoryBIO): whoever carries the
bytes (the relay) sees only ciphertext and cannot change what is read without
failing the record MACs, and the certificate is verified against the
enclave's own CA bundle."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from nos_enclave.protocol import FetchFailed

MAX_RESPONSE_BYTES = 1 << 20


def client_context(ca_bundle: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_http_response(raw: bytes, *, closed: bool) -> HttpResponse | None:
    """The response if `raw` holds all of it (by Content-Length, chunked, or a clean close)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError) as err:
        raise FetchFailed(f"not an HTTP response: {lines[0][:60]!r}") from err
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        decoded = _dechunk(body)
        return None if decoded is None else HttpResponse(status, headers, decoded)
    if "content-length" in headers:
        length = int(headers["content-length"])
        return HttpResponse(status, headers, body[:length]) if len(body) >= length else None
    return HttpResponse(status, headers, body) if closed else None


def _dechunk(body: bytes) -> bytes | None:
    out = bytearray()
    while True:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            return None
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        if len(rest) < size + 2:
            return None
        out += rest[:size]
        body = rest[size + 2 :]


@dataclass
class TlsFetch:
    """One GET over TLS. Feed it network bytes with `step`; it says what to send."""

    context: ssl.SSLContext
    host: str
    target: str
    _incoming: ssl.MemoryBIO = field(default_factory=ssl.MemoryBIO)
    _outgoing: ssl.MemoryBIO = field(default_factory=ssl.MemoryBIO)
    _plaintext: bytearray = field(default_factory=bytearray)
    _request_sent: bool = False
    response: HttpResponse | None = None
    # A session of an earlier fetch from this host (same context) to resume: the chain was verified in that
    # session's full handshake; a server that refuses it gets a full handshake, verified again.
    session: ssl.SSLSession | None = None

    def __post_init__(self) -> None:
        self._tls = self.context.wrap_bio(self._incoming, self._outgoing, server_hostname=self.host,
                                          session=self.session)

    def resumable_session(self) -> ssl.SSLSession | None:
        """This connection's session, if the server gave a ticket to resume it with (after the response)."""
        session = self._tls.session
        return session if session is not None and session.has_ticket else None

    @property
    def session_reused(self) -> bool:
        return bool(self._tls.session_reused)

    def start(self) -> bytes:
        return self.step(b"", eof=False)

    @property
    def done(self) -> bool:
        return self.response is not None

    def step(self, received: bytes, *, eof: bool) -> bytes:
        """Consume bytes from the source; return bytes for the source (may be empty)."""
        if received:
            self._incoming.write(received)
        if eof:
            self._incoming.write_eof()
        try:
            self._advance(eof)
        except ssl.SSLCertVerificationError as err:
            raise FetchFailed(f"certificate of {self.host} not trusted: {err.verify_message}") from err
        except ssl.SSLError as err:
            raise FetchFailed(f"TLS failure talking to {self.host}: {err.reason or err}") from err
        return self._outgoing.read()

    def _advance(self, eof: bool) -> None:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            if eof:
                raise FetchFailed(f"{self.host} closed the connection during the handshake") from None
            return
        if not self._request_sent:
            request = (
                f"GET {self.target} HTTP/1.1\r\nHost: {self.host}\r\nAccept: */*\r\n"
                "Connection: close\r\nUser-Agent: nos-enclave/1\r\n\r\n"
            )
            self._tls.write(request.encode())
            self._request_sent = True
        closed = False
        while True:
            try:
                chunk = self._tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                closed = True  # close_notify: the server's authenticated end of data
                break
            except ssl.SSLEOFError:
                break  # closed without close_notify: complete only if HTTP framing says so
            if not chunk:
                closed = True
                break
            self._plaintext += chunk
            if len(self._plaintext) > MAX_RESPONSE_BYTES:
                raise FetchFailed(f"response from {self.host} is larger than {MAX_RESPONSE_BYTES} bytes")
        self.response = parse_http_response(bytes(self._plaintext), closed=closed)
        if self.response is None and (eof or closed):
            raise FetchFailed(f"{self.host} closed the connection before the response was complete")
