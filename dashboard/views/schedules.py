"""The schedules page: being built for issue 22 (its owner replaces this module)."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse

from dashboard.access import dashboard_view


@dashboard_view
def not_built(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404("Not built yet.")
