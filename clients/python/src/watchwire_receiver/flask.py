"""Flask: `pip install "watchwire-receiver[flask]"`.

The body is `request.get_data()`, the raw bytes the signature covers (read before
anything touches `request.form` or `request.json`). The headers come from the WSGI
environ, which has one entry per header name: a server that receives a header twice
joins the values with a comma before Flask runs (werkzeug's server, gunicorn and
wsgiref with `,`; werkzeug's test client with `, `). A repeat therefore arrives as one
value, `a,b`, and is judged as that value: most such notifications are still refused,
with another reason than the Rust library's `malformedHeader`, and a repeated
`X-Goog-Changed`, `X-Goog-Resource-URI`, `X-Watchwire-Event-Resource` or
`X-Watchwire-Cursor` is accepted with the joined value. The package README has the
table, header by header, and `tests/test_flask.py` pins it behind a real WSGI server.

    from flask import Flask
    from watchwire_receiver import Channel, Receiver
    from watchwire_receiver.flask import view

    receiver = Receiver(Channel("orders-7f3a", token="per-channel-random-token"))

    def handle(receipt):
        if not receipt.observation.is_duplicate:
            ...  # receipt.notification, receipt.body

    app = Flask(__name__)
    app.add_url_rule("/notifications", view_func=view(receiver, handle), methods=["POST"])
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from flask import Response
from flask import request as current_request

from .headers import from_wsgi_environ
from .receiver import Handler, Receipt, Receiver


def receive(receiver: Receiver, request: Any = None) -> Receipt:
    """Checks and tracks the notification in `request` (Flask's current request by
    default)."""
    request = current_request if request is None else request
    body = request.get_data(cache=True)
    return receiver.receive(from_wsgi_environ(request.environ), body, method=request.method)


def response(receipt: Receipt) -> Response:
    """The answer a receipt calls for."""
    return Response(receipt.response_body, status=receipt.status, headers=receipt.response_headers)


def handle(receiver: Receiver, handler: Optional[Handler] = None, request: Any = None) -> Receipt:
    """`receive`, then `handler` on a valid notification, as `Receiver.handle` does."""
    receipt = receive(receiver, request)
    if not receipt.ok or handler is None:
        return receipt
    try:
        status = handler(receipt)
    except BaseException:
        receiver.release(receipt)
        raise
    return receiver.settle(receipt, status)


def view(receiver: Receiver, handler: Optional[Handler] = None) -> Callable[[], Response]:
    """A Flask view function for notifications (register it with `methods=["POST"]`, or
    with all methods to have others answered `405` in the error envelope)."""

    def notifications() -> Response:
        return response(handle(receiver, handler))

    notifications.__name__ = "watchwire_notifications"
    return notifications
