"""Lake services: collections, files, ingest, annotations and tags.

Each service function takes `session` keyword-only.
"""
