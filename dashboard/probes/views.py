"""Being built for issue 22 (its owner replaces this module)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse


def not_built(request: HttpRequest) -> HttpResponse:
    raise Http404("Not built yet.")
