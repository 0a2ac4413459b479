"""Lake services: collections, files, ingest, annotations and tags. Each takes `session` keyword-only."""
