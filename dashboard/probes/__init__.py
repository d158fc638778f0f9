"""Endpoints for machines: Prometheus `/metrics`, liveness `/healthz`, readiness `/readyz`."""
