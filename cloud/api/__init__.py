"""The HTTP side: the ``/api/v1`` REST API, the web console, health, readiness and metrics."""
