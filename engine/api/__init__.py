"""HTTP API (FastAPI): thin routes over `engine` services."""
