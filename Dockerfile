# The engine image for docker-compose.yml: API (`metalake api`) and workers (`metalake worker`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    METALAKE_HOME=/data/home \
    METALAKE_API_HOST=0.0.0.0 \
    METALAKE_API_PORT=8470

# libglib: OpenCV headless (video probing); the wheels bring everything else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 metalake \
    && mkdir -p /data/home /data/lake \
    && chown -R metalake:metalake /data

WORKDIR /app
# The source (what .dockerignore lets through: no .env, keys or local engine state), installed
# editable so that migrations/ stays beside engine/, where `metalake db upgrade` finds it.
# Secrets reach the containers as environment variables at run time (docker-compose.yml).
COPY . .
RUN pip install -e '.[engine]'

USER metalake
EXPOSE 8470
CMD ["metalake", "api"]
