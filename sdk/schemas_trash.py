"""Wire models of the trash: files taken out of the lake by a selection (docs/layernext.md)."""

from __future__ import annotations

from pydantic import Field, model_validator

from sdk.schemas import ContentType, JsonObject, Schema


class TrashRequest(Schema):
    """The files to take out of the lake: those `query` and `filter` select, in one collection
    or of one content type. The whole lake is never selected by an empty request."""

    query: str | None = None
    filter: JsonObject | None = None
    content_type: ContentType | None = None
    collection_id: int | None = None

    @model_validator(mode="after")
    def _narrowed(self) -> TrashRequest:
        if not (self.query or self.filter or self.collection_id is not None):
            raise ValueError(
                "name the files to trash: a query, a filter or a collection_id (an empty "
                "request would select the whole lake)"
            )
        return self


class TrashReport(Schema):
    trashed: int = Field(description="Files taken out of the lake.")
    unique_names: list[str] = Field(description="Their unique names (the first 1000).")
    stored_bytes_removed: int = Field(
        description="Files whose bytes the engine managed and no other file shares: removed "
        "from storage once the deletion committed."
    )
