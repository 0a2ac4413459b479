"""Database: typed tables, the engine/session factory and the error boundary."""
