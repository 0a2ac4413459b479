"""Embeddings: spaces (one per embedding model version or external name), validated upserts
with a partial HNSW index per space, vector lookups, and cosine similarity search."""
