"""The three endpoints for machines. Thin: who may read (probes.access), what is read
(probes.metrics, probes.readiness)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from dashboard.probes import metrics as metrics_module
from dashboard.probes import readiness
from dashboard.probes.access import Access, access


@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers requests. No database, no broker, no login: a
    platform restarts the process when this fails, and an outage elsewhere is no reason
    to restart it."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: 200 when every check passes, else 503. The checks and their details
    only for an authorised caller (the metrics token, a staff session); anyone else
    learns the verdict alone."""
    found = readiness.checks()
    ok, failed = readiness.overall(found)
    status = 200 if ok else 503
    body: dict[str, object] = {"status": "ok" if ok else "unavailable"}
    if access(request) is Access.ALLOWED:
        body["failed"] = failed
        body["checks"] = [check.as_dict() for check in found]
    return JsonResponse(body, status=status)


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition (the classic 0.0.4 format every Prometheus reads),
    read from the database and the broker now."""
    allowed = access(request)
    if allowed is Access.NO_CREDENTIALS:
        response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if allowed is Access.REFUSED:
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    return HttpResponse(metrics_module.render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
