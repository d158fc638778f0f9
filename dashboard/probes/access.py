"""Who may read /metrics and /readyz's details.

- A caller with `Authorization: Bearer <TASKS_METRICS_TOKEN>` (a Prometheus scraper, a
  platform's probe): the token comes from the environment (`METRICS_TOKEN` in this
  repository's settings) and is compared in constant time.
- A logged-in staff user who may view the dashboard (an operator checking by hand).
- In DEBUG only, a request from the loopback address: `make run`'s Prometheus or curl on
  the developer's machine. Never outside DEBUG: behind a reverse proxy on the same host
  every request comes from 127.0.0.1.

Nobody else: no token sent is 401 (with `WWW-Authenticate: Bearer`), a wrong one 403. In
production with no token set, /metrics is closed to all but staff sessions.
"""

from __future__ import annotations

import hmac
import ipaddress
from enum import Enum

from django.conf import settings
from django.http import HttpRequest

from dashboard.access import can_view
from tasks.conf import layer_settings


class Access(Enum):
    ALLOWED = 200
    NO_CREDENTIALS = 401
    REFUSED = 403


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer ...` header; None without one."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def access(request: HttpRequest) -> Access:
    """May this request read metrics and readiness details?"""
    expected = layer_settings().metrics_token
    given = bearer_token(request)
    if given is not None:
        # compare_digest: how long the comparison takes tells nothing about the token.
        if expected and hmac.compare_digest(given.encode(), expected.encode()):
            return Access.ALLOWED
        return Access.REFUSED
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and can_view(user):
        return Access.ALLOWED
    if settings.DEBUG and is_loopback(request.META.get("REMOTE_ADDR", "")):
        return Access.ALLOWED
    return Access.NO_CREDENTIALS
