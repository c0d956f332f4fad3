"""Machine endpoints: ``health/`` for load balancers and status pages, ``metrics`` for Prometheus.

Both are unauthenticated, like most scrape and probe endpoints, and show only counts,
ages and booleans. Restrict them at the proxy if even that is too much. Both answer GET and
HEAD (a probe that only reads the status), with or without a trailing slash: no redirect.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .observability import health as health_checks


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """200 when the broker, the database and at least one worker answer; 503 otherwise."""
    now = timezone.now()
    report = health_checks.check(now)
    return JsonResponse(report.as_dict(now), status=200 if report.healthy else 503)


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    # Imported here: prometheus_client is an optional extra, and the health endpoint (same URLconf)
    # must not need it.
    try:
        from .observability.prometheus import exposition
    except ImportError:
        return HttpResponse(
            'Prometheus metrics need prometheus_client: pip install "queueprio[prometheus]"\n',
            status=501,
            content_type="text/plain",
        )
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)
