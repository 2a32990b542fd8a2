"""The back office's dashboard (placeholder: helper D's module replaces it)."""

from typing import Any


def add_routes(app: Any, store: Any) -> None:
    pass
