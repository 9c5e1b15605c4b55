"""How the models become JSON Schema in the document."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema


class PlainSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema without a title on every property ("Hold Id" for hold_id)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False
