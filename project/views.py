"""The project's front page: where the admin's "View site" link and the root URL lead."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>queueprio</title>
<style>body {{ font: 16px/1.5 sans-serif; margin: 2em auto; max-width: 40em; color: #333; }}
a {{ color: #417690; }} code {{ color: #666; }}</style></head>
<body><h1>queueprio</h1><p>Priority scheduling for Celery on RabbitMQ (1 = most urgent … 10 = least).</p>
<ul>{links}</ul></body></html>"""


def home(request: HttpRequest) -> HttpResponse:
    links = [
        (reverse("admin:queueprio_dashboard_changelist"), "Queue dashboard", "depth, waits, throughput (staff)"),
        (reverse("admin:queueprio_job_changelist"), "Jobs", "the ledger: every job, its priorities and times (staff)"),
        (reverse("admin:index"), "Admin", "default priorities, bands, the urgent quota, periodic tasks"),
        (reverse("queueprio:health"), "Health", "JSON for load balancers: 200 healthy, 503 not"),
        (reverse("queueprio:metrics"), "Metrics", "Prometheus text exposition"),
    ]
    items = format_html_join("", '<li><a href="{}">{}</a>: {}</li>', links)
    return HttpResponse(format_html(PAGE, links=items))
