"""Django: `pip install "watchwire-receiver[django]"`.

The body is `request.body`, the raw bytes the signature covers. Where the headers come
from depends on how Django runs:

- Under ASGI (`ASGIRequest`), from the ASGI scope's own header list, which keeps every
  header line: a repeated `X-Goog-*` header is refused as `malformedHeader`, exactly as
  the Rust library refuses it. (`request.META` and `request.headers` would not do:
  Django joins repeats there with `,`.)
- Under WSGI (`WSGIRequest`), from `request.META`, which has one entry per header name:
  the server (gunicorn, wsgiref, `runserver`) has already joined a repeated header's
  values with `,`, so a repeat arrives as one value, `a,b`, and is judged as that value.
  Most such notifications are still refused, with another reason than `malformedHeader`,
  and a repeated `X-Goog-Changed`, `X-Goog-Resource-URI`, `X-Watchwire-Event-Resource`
  or `X-Watchwire-Cursor` is accepted with the joined value. The package README has the
  table, header by header, and `tests/test_django.py` pins it behind a real WSGI server.

The view is exempt from CSRF checks: the gateway posts without a CSRF token, and the
channel's token and signature authenticate it instead.

    # urls.py
    from django.urls import path
    from watchwire_receiver import Channel, Receiver
    from watchwire_receiver.django import view

    receiver = Receiver(Channel("orders-7f3a", token="per-channel-random-token"))

    def handle(receipt):
        if not receipt.observation.is_duplicate:
            ...  # receipt.notification, receipt.body

    urlpatterns = [path("notifications", view(receiver, handle))]
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]

from .headers import Text, from_wsgi_environ
from .receiver import Handler, Receipt, Receiver


def request_headers(request: HttpRequest) -> List[Tuple[Text, Text]]:
    """The request's headers as pairs: the ASGI scope's list when there is one (repeats
    kept), else rebuilt from `request.META` (repeats already joined by the server)."""
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and "headers" in scope:
        return list(scope["headers"])
    return list(from_wsgi_environ(request.META))


def receive(receiver: Receiver, request: HttpRequest) -> Receipt:
    """Checks and tracks the notification in `request`."""
    return receiver.receive(request_headers(request), request.body, method=request.method or "")


def response(receipt: Receipt) -> HttpResponse:
    """The answer a receipt calls for."""
    answer = HttpResponse(receipt.response_body, status=receipt.status)
    if not receipt.response_headers:
        del answer["Content-Type"]
    for name, value in receipt.response_headers:
        answer[name] = value
    return answer


def handle(receiver: Receiver, request: HttpRequest, handler: Optional[Handler] = None) -> Receipt:
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


def view(receiver: Receiver, handler: Optional[Handler] = None) -> Callable[..., HttpResponse]:
    """A Django view for notifications, exempt from CSRF; other methods than `POST` are
    answered `405`."""

    def notifications(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return response(handle(receiver, request, handler))

    exempt: Callable[..., HttpResponse] = csrf_exempt(notifications)
    return exempt
