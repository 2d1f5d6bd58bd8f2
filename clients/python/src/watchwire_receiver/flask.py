"""Flask: `pip install "watchwire-receiver[flask]"`.

The body is `request.get_data()`, the raw bytes the signature covers (read it before
anything touches `request.form` or `request.json`). The headers come from the WSGI
environ, and WSGI has one entry per header name: a server that receives a header twice
joins the values with a comma before Flask sees them (werkzeug's development server,
gunicorn and wsgiref join with `,`; werkzeug's test client with `, `). So behind WSGI a
repeated header arrives as one value, `a,b`, and is judged as that value: a repeated
`X-Goog-Channel-ID` fails as `channelIdMismatch`, a repeated `X-Goog-Message-Number` as
`invalidMessageNumber`, a repeated token as `tokenMismatch`, a repeated signature header
as `signatureMismatch` (with a signing secret); but a repeated `X-Goog-Changed`,
`X-Watchwire-Cursor`, `X-Watchwire-Event-Resource` or `X-Goog-Resource-URI` (or
`X-Goog-Resource-ID` before the resource id is known) is accepted with the joined value,
where the Rust library refuses it as `malformedHeader`. Servers also drop or merge names
with `_`. A channel with a signing secret still authenticates every request.

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
