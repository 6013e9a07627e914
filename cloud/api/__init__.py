"""HTTP API and the overview page (FastAPI; jinja2 renders the page)."""
