"""Observability: logs now; metrics, traces and the request log in issue 6."""
