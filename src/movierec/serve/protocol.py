"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for request headers.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but gives a client for ever to
finish the request line and headers: a connection that sends nothing, or one byte now and then
("slowloris"), stays open and holds a file descriptor and a connection slot. Here a connection
must deliver complete headers within `header_timeout` seconds of opening, or of the first byte
of its next request on a kept-alive connection; the deadline is not renewed per byte. A client
that started a request then gets HTTP 408 and the connection is closed; a silent one is just
closed. The body's own deadline is the app's (`movierec.serve.guard.BodyLimits`).

Imported only by `movierec serve` (it needs uvicorn and h11, both of the `serve` extra).
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeaderTimeoutH11Protocol", "with_header_timeout"]


class HeaderTimeoutH11Protocol(H11Protocol):
    """`H11Protocol` that closes connections slower than `header_timeout` to send headers."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the connection with the header deadline armed."""
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        """Feed the data to h11; keep the deadline while headers are incomplete, else cancel it."""
        super().data_received(data)
        # IDLE: h11 still waits for (the rest of) a request line and headers.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_header_timer()
        else:
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Cancel the header deadline and close as `H11Protocol` does."""
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:  # a deadline, not an idle timer: never pushed back
            self._header_timer = self.loop.call_later(self.header_timeout,
                                                      self._on_header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a request arrived: say why it is dropped
            body = json.dumps({"detail": "request headers not received within "
                               f"{self.header_timeout:g} s"}).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.close()


def with_header_timeout(seconds: float) -> type[HeaderTimeoutH11Protocol]:
    """The protocol class to give uvicorn (`http=`) for a header deadline of `seconds`."""
    if not seconds > 0:
        raise ValueError(f"header timeout must be > 0 seconds, got {seconds!r}")
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,),
                {"header_timeout": float(seconds)})
