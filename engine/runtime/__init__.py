"""Running the engine's services on one machine: embedded PostgreSQL and Redis, API, worker."""
