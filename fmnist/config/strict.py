"""The base of every schema: an unknown key is an error, so a misspelt key fails as loudly
as a bad value instead of being ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)
