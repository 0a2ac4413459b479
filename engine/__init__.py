"""MetaLake Engine: the server side (lake, query language, API, services, jobs)."""

__version__ = "0.1.0"
