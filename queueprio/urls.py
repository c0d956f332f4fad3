"""queueprio's endpoints; include under a prefix: ``path("queueprio/", include("queueprio.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "queueprio"

# Each endpoint answers with and without the trailing slash (probes and scrapers don't all follow
# redirects); the named one is the form the docs give.
urlpatterns = [
    path("health/", views.health, name="health"),
    path("health", views.health),
    path("metrics", views.metrics, name="metrics"),
    path("metrics/", views.metrics),
]
