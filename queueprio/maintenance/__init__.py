"""Periodic upkeep run by beat: the aging sweep, retention, metrics rollup, and first-run setup."""
