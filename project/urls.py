"""URL configuration."""

from django.contrib import admin
from django.urls import include, path

from .views import home

urlpatterns = [
    # The admin's "View site" link leads here (its default, "/").
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("queueprio/", include("queueprio.urls")),
]
