"""queueprio's endpoints; include under a prefix: ``path("queueprio/", include("queueprio.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "queueprio"

urlpatterns = [
    path("health/", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
]
