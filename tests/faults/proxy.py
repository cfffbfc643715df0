"""A fault-injecting TCP proxy on loopback, between an S3 client and its server.

Every connection is relayed byte for byte in both directions (so request
signatures still verify). The client's stream is read as HTTP/1.1 requests
(head, then ``Content-Length`` bytes of body) only to know where each request
starts: a :class:`Fault` whose filter matches a request acts on that request
and on the answer that follows it (clients never pipeline, so every answer byte
after a request belongs to it):

- ``silence``: the request is never forwarded and never answered;
- ``latency``: the request is forwarded after ``delay`` seconds;
- ``truncate``: the answer is cut after ``after`` bytes and the connection closed;
- ``stall``: the answer stops after ``after`` bytes, the connection kept open;
- ``reset``: the answer is cut after ``after`` bytes with a TCP RST;
- ``drip``: the answer is forwarded ``chunk`` bytes every ``interval`` seconds;
- ``throttle``: the request's body is forwarded at ``chunk`` bytes per ``interval`` seconds;
- ``http``: the proxy answers itself with HTTP ``status`` and closes.

A fault acts on its first ``times`` matching requests (all of them when None).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_ERROR_CODES = {500: "InternalError", 503: "SlowDown", 502: "BadGateway", 504: "GatewayTimeout"}


@dataclass
class Fault:
    """What to do to the requests that match ``method`` and ``path_contains``."""

    mode: str
    times: int | None = None
    after: int = 0
    delay: float = 0.0
    chunk: int = 1024
    interval: float = 0.05
    status: int = 503
    method: str | None = None
    path_contains: str = ""
    hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def claim(self, method: str, path: str) -> bool:
        """Whether this request is faulted (and count it)."""
        if self.method is not None and method != self.method:
            return False
        if self.path_contains not in path:
            return False
        with self._lock:
            if self.times is not None and self.hits >= self.times:
                return False
            self.hits += 1
            return True


class FaultProxy:
    """``with FaultProxy(upstream) as proxy:`` then point the client at ``proxy.endpoint_url``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.fault: Fault | None = None
        self.requests = 0
        #: Every request head seen (request line and headers), in order.
        self.heads: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.endpoint_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True, name="fault-proxy").start()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def inject(self, fault: Fault | None) -> Fault | None:
        """Apply ``fault`` to the requests from now on (None: relay faithfully)."""
        self.fault = fault
        return fault

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                _close(sock)

    # -- relaying -------------------------------------------------------------

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.add(sock)
        return sock

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = self._track(socket.create_connection(self.upstream, timeout=10))
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        state = _Connection(client, upstream)
        threading.Thread(target=self._answers, args=(state,), daemon=True).start()
        self._requests(state)  # a silenced connection stays open until the proxy closes

    def _requests(self, state: _Connection) -> None:
        """Client -> server: find each request head, decide its fault, forward."""
        buffer = b""
        while not self._closed.is_set():
            while b"\r\n\r\n" not in buffer:
                data = _recv(state.client)
                if not data:
                    _shutdown_write(state.upstream)
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            method, path, length, chunked = _parse_request(head)
            self.requests += 1
            self.heads.append(head.decode("latin-1"))
            fault = self.fault
            active = fault if fault is not None and fault.claim(method, path) else None
            state.begin(active)
            if active is not None and active.mode == "silence":
                state.silenced = True
                return  # never forwarded, never answered: the sockets stay open
            if active is not None and active.mode == "http":
                state.answer_error(active.status, with_body=method != "HEAD")
                return
            if active is not None and active.mode == "latency":
                time.sleep(active.delay)
            if not _send(state.upstream, head + b"\r\n\r\n"):
                return
            if chunked:  # not parsed: relay the rest of the connection as it comes
                _send(state.upstream, buffer)
                _pump(state.client, state.upstream)
                return
            pace = active if active is not None and active.mode == "throttle" else None
            buffer = _relay_body(state, buffer, length, pace)
            if buffer is None:
                return

    def _answers(self, state: _Connection) -> None:
        """Server -> client, with the current request's fault applied."""
        try:
            while True:
                data = _recv(state.upstream)
                if not data:
                    break
                if not state.forward(data):
                    return
        finally:
            if not state.held:
                _close(state.client)
                _close(state.upstream)


class _Connection:
    """One client connection and its upstream, and the fault of the current request."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.fault: Fault | None = None
        self.sent = 0
        self.silenced = False
        self.held = False
        self.lock = threading.Lock()

    def begin(self, fault: Fault | None) -> None:
        with self.lock:
            self.fault, self.sent = fault, 0

    def answer_error(self, status: int, with_body: bool = True) -> None:
        code = _ERROR_CODES.get(status, str(status))
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        head = (
            f"HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        _send(self.client, head + body if with_body else head)
        _close(self.client)
        _close(self.upstream)

    def forward(self, data: bytes) -> bool:
        """Send ``data`` to the client under the fault; False once the connection is cut."""
        with self.lock:
            fault, sent = self.fault, self.sent
        mode = fault.mode if fault is not None else None
        if mode in ("truncate", "stall", "reset") and fault is not None:
            room = max(fault.after - sent, 0)
            if len(data) >= room:
                _send(self.client, data[:room])
                self.sent = sent + room
                return self._cut(mode)
        if mode == "drip" and fault is not None:
            for i in range(0, len(data), fault.chunk):
                time.sleep(fault.interval)
                if not _send(self.client, data[i : i + fault.chunk]):
                    return False
        elif not _send(self.client, data):
            return False
        with self.lock:
            self.sent += len(data)
        return True

    def _cut(self, mode: str) -> bool:
        if mode == "stall":
            self.held = True
            return False
        if mode == "reset":
            _reset(self.client)
        else:
            _close(self.client)
        _close(self.upstream)
        return False


def _relay_body(
    state: _Connection, buffer: bytes, length: int, pace: Fault | None = None
) -> bytes | None:
    """Forward ``length`` bytes of request body (``pace``: ``chunk`` bytes every
    ``interval`` seconds, however the client's bytes arrive); return what follows it
    (None: closed)."""
    send = _send if pace is None else _paced(pace)
    while len(buffer) < length:
        if not send(state.upstream, buffer):
            return None
        length -= len(buffer)
        buffer = _recv(state.client)
        if not buffer:
            return None
    if not send(state.upstream, buffer[:length]):
        return None
    return buffer[length:]


def _paced(fault: Fault):  # type: ignore[no-untyped-def]
    def send(sock: socket.socket, data: bytes) -> bool:
        for i in range(0, len(data), fault.chunk):
            piece = data[i : i + fault.chunk]
            time.sleep(fault.interval * len(piece) / fault.chunk)
            if not _send(sock, piece):
                return False
        return True

    return send


def _parse_request(head: bytes) -> tuple[str, str, int, bool]:
    lines = head.decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    path = rest.rpartition(" ")[0]
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    return method, path, length, chunked


def _pump(src: socket.socket, dst: socket.socket) -> None:
    while data := _recv(src):
        if not _send(dst, data):
            return
    _shutdown_write(dst)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _shutdown_write(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def _close(sock: socket.socket) -> None:
    """FIN now, even while another thread waits in ``recv`` on the socket (a bare
    ``close`` would wait for that call to return before the kernel lets go)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _reset(sock: socket.socket) -> None:
    """RST: no lingering on close; SHUT_RD wakes a waiting ``recv`` without sending a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()
