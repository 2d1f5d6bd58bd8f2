"""Starlette and FastAPI: `pip install "watchwire-receiver[starlette]"` (or `[fastapi]`).

The headers come from `request.headers.raw`, the ASGI scope's own list: every header
line as the server received it, repeats and all, so a repeated `X-Goog-*` header is
refused as `malformedHeader` exactly as the Rust library refuses it. The body is
`await request.body()`, the raw bytes the signature covers.

FastAPI::

    from fastapi import FastAPI, Request
    from watchwire_receiver import Channel, Receiver
    from watchwire_receiver.starlette import receive, response

    receiver = Receiver(Channel("orders-7f3a", token="per-channel-random-token"))
    app = FastAPI()

    @app.post("/notifications")
    async def notifications(request: Request):
        receipt = await receive(receiver, request)
        if receipt.ok and not receipt.observation.is_duplicate:
            ...  # handle receipt.notification and receipt.body
        return response(receipt)

Starlette: `Route("/notifications", endpoint(receiver, handler), methods=["POST"])`.
"""

from __future__ import annotations

import inspect
from typing import Awaitable, Callable, Optional, Union

from starlette.requests import Request
from starlette.responses import Response

from .receiver import Receipt, Receiver

#: A handler as for `Receiver.handle`, or a coroutine function.
AsyncHandler = Callable[[Receipt], Union[Optional[int], Awaitable[Optional[int]]]]


async def receive(receiver: Receiver, request: Request) -> Receipt:
    """Checks and tracks the notification in `request`."""
    body = await request.body()
    return receiver.receive(request.headers.raw, body, method=request.method)


def response(receipt: Receipt) -> Response:
    """The answer a receipt calls for."""
    return Response(
        content=receipt.response_body,
        status_code=receipt.status,
        headers=dict(receipt.response_headers),
    )


async def handle(receiver: Receiver, request: Request, handler: Optional[AsyncHandler]) -> Receipt:
    """`receive`, then `handler` (sync or async) on a valid notification, as
    `Receiver.handle` does: its status (or `None` for `204`) is the answer, and if it
    raises or answers other than 2xx the notification counts as not seen."""
    receipt = await receive(receiver, request)
    if not receipt.ok or handler is None:
        return receipt
    try:
        status = handler(receipt)
        if inspect.isawaitable(status):
            status = await status
    except BaseException:
        receiver.release(receipt)
        raise
    return receiver.settle(receipt, status)


def endpoint(
    receiver: Receiver, handler: Optional[AsyncHandler] = None
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint (also a FastAPI route function) for notifications."""

    async def notifications(request: Request) -> Response:
        return response(await handle(receiver, request, handler))

    return notifications
