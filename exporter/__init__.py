"""Ant Media Server exporter: AMS REST client, snapshot model, ghost predicate, Prometheus collector."""
