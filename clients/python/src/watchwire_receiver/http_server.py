"""A receiver on the standard library's `http.server`, with no framework at all.

`http.server` keeps every header line (`self.headers.items()` lists repeats), so a
repeated `X-Goog-*` header is refused as `malformedHeader`, exactly as the Rust library
refuses it. The body is read as the raw bytes of `Content-Length`.

    from watchwire_receiver import Channel, Receiver
    from watchwire_receiver.http_server import serve

    receiver = Receiver(Channel("orders-7f3a", token="per-channel-random-token"))

    def handle(receipt):
        if not receipt.observation.is_duplicate:
            print(receipt.notification.state, receipt.notification.event_resource)

    serve(receiver, handle, ("127.0.0.1", 8000)).serve_forever()

`http.server` is meant for development and small internal endpoints; it does no TLS.
"""

from __future__ import annotations

import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional, Tuple, Type
from urllib.parse import urlsplit

from .receiver import Handler, Receiver, error_envelope


def request_handler(
    receiver: Receiver,
    handler: Optional[Handler] = None,
    *,
    path: Optional[str] = None,
    log: bool = True,
) -> Type[BaseHTTPRequestHandler]:
    """A `BaseHTTPRequestHandler` class that answers notifications at `path` (any path
    when `None`; others get `404`). With `log=False` it prints nothing per request."""

    class NotificationHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the gateway reuses connections

        def _answer(self) -> None:
            if path is not None and urlsplit(self.path).path != path:
                self._reply(404, [("Content-Type", "application/json")],
                            error_envelope(404, "notFound", f"notifications are received at {path}"))
                return
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                # The gateway always sends a Content-Length; http.server cannot dechunk.
                self.close_connection = True
                self._reply(411, [("Content-Type", "application/json")],
                            error_envelope(411, "lengthRequired", "send a Content-Length"))
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                self._reply(400, [("Content-Type", "application/json")],
                            error_envelope(400, "badRequest", "Content-Length is not a length"))
                return
            body = self.rfile.read(length) if length else b""
            # http.client decoded each header line as latin-1: back to the bytes received.
            headers = [(name, value.encode("latin-1")) for name, value in self.headers.items()]
            try:
                receipt = receiver.handle(headers, body, handler, method=self.command)
            except Exception:  # the handler failed: ask for the notification again
                self.log_error("the notification handler failed:\n%s", traceback.format_exc())
                self._reply(500, [("Content-Type", "application/json")],
                            error_envelope(500, "internalError", "the notification was not handled"))
                return
            self._reply(receipt.status, receipt.response_headers, receipt.response_body)

        def _reply(self, status: int, headers: List[Tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if status != 204:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        do_POST = do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

        def log_message(self, format: str, *args: object) -> None:
            if log:
                sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    return NotificationHandler


def serve(
    receiver: Receiver,
    handler: Optional[Handler] = None,
    address: Tuple[str, int] = ("127.0.0.1", 8000),
    *,
    path: Optional[str] = None,
    log: bool = True,
) -> ThreadingHTTPServer:
    """A threading HTTP server bound to `address` (port `0` picks a free one; read it
    from `server.server_address`), answering notifications. Call `serve_forever()`."""
    return ThreadingHTTPServer(address, request_handler(receiver, handler, path=path, log=log))
