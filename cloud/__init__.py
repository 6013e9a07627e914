"""forewarn cloud: decode, ingest, core, decisions, actions and API."""
