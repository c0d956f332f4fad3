"""Fault injection with real processes: broker restarts, killed workers, a locked DB, failed publishes."""
