"""Prometheus exporter for AMS: a collect-on-scrape collector over the AMS layer, and its HTTP server."""
