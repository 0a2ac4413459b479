#!/bin/sh
# Runs once, when PostgreSQL initialises an empty data volume (docker-entrypoint-initdb.d of
# the pgvector/pgvector image, as the cluster superuser). The engine connects as a role of its
# own (METALAKE_DB_USER, default metalake): not a superuser, no CREATEDB or CREATEROLE, owner
# of its database (METALAKE_DB_NAME, default metalake) and of that database's `public` schema,
# so its migrations create and own every table. The `vector` extension is created here, by the
# role where pgvector is a trusted extension (it then owns it), else by the superuser; either
# way the engine's `CREATE EXTENSION IF NOT EXISTS vector` needs no privilege of its own.
# The superuser's password (POSTGRES_PASSWORD) stays in the db container.
set -eu
: "${METALAKE_DB_PASSWORD:?set METALAKE_DB_PASSWORD (the engine role's password)}"
role="${METALAKE_DB_USER:-metalake}"
database="${METALAKE_DB_NAME:-metalake}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
     --set app_role="$role" --set app_database="$database" \
     --set app_password="$METALAKE_DB_PASSWORD" <<'SQL'
CREATE ROLE :"app_role" LOGIN PASSWORD :'app_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE DATABASE :"app_database" OWNER :"app_role";
REVOKE ALL ON DATABASE :"app_database" FROM PUBLIC;
SQL

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$database" \
     --set app_role="$role" <<'SQL'
ALTER SCHEMA public OWNER TO :"app_role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SELECT set_config('metalake.app_role', :'app_role', false);
DO $$
BEGIN
  EXECUTE format('SET LOCAL ROLE %I', current_setting('metalake.app_role'));
  CREATE EXTENSION IF NOT EXISTS vector;
EXCEPTION WHEN insufficient_privilege THEN  -- not a trusted extension: the superuser's
  CREATE EXTENSION IF NOT EXISTS vector;
END
$$;
SQL
