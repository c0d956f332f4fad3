"""Rollups, queue depth, health, Prometheus, charts and the dashboard: reading the ledger, never writing jobs."""
