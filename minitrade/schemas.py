"""JSON Schemas of the two file kinds, derived from the pydantic models (there is no other schema)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minitrade.models import Plan, Settings

SCHEMA_FILES: dict[str, type[Settings] | type[Plan]] = {"minitrade.schema.json": Settings,
                                                         "plan.schema.json": Plan}


def schema_of(model: type[Settings] | type[Plan]) -> dict[str, Any]:
    doc = model.model_json_schema(by_alias=True, mode="validation")
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return doc


def write_schemas(folder: Path) -> list[Path]:
    """Write both schemas into `folder`; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMA_FILES.items():
        path = folder / name
        path.write_text(json.dumps(schema_of(model), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
