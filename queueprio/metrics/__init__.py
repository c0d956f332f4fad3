"""Metrics: a per-minute rollup of the ledger, live readings, health and Prometheus exposition."""
