"""Notebook parameters as people and papermill pass them.

`papermill -p TASKS sst2,mrpc` or `-p TASKS '["sst2", "mrpc"]'` makes TASKS a string; a student
types a list. Every notebook reads its list and grid parameters through these functions, so all
three forms work and anything else fails with a message that names the parameter.
"""

from __future__ import annotations

import json
from collections.abc import Callable


def as_list(value, name: str, kind: Callable = str) -> list | None:
    """A list, a tuple, a comma-separated string ("sst2,mrpc") or a JSON list ('["sst2"]') as a list of
    `kind`; None stays None (the notebook's default applies); a single number becomes a one-item list."""
    if value is None:
        return None
    items = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"{name}: {value!r} looks like a JSON list but is not one ({error}).") from None
        else:
            items = [part.strip() for part in text.split(",") if part.strip()]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        items = [value]
    if not isinstance(items, (list, tuple)):
        raise ValueError(
            f"{name} must be a list, a comma-separated string or a JSON list, not {type(value).__name__} {value!r}."
        )
    try:
        return [kind(item) for item in items]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: every item of {value!r} must be a {getattr(kind, '__name__', kind)}.") from None


def as_grid(value, name: str, kind: Callable = float) -> dict[str, tuple] | None:
    """A {key: list} mapping, given as a dict or a JSON object string ('{"lora": [1e-4, 1e-3]}'); each list
    as in as_list (so '{"lora": "1e-4,1e-3"}' works too). None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{name} must be a dict or a JSON object such as '{{\"lora\": [1e-4, 1e-3]}}' ({error})."
            ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f'{name} must be a dict such as {{"lora": [1e-4, 1e-3]}}, not {type(value).__name__} {value!r}.'
        )
    return {str(key): tuple(as_list(items, f"{name}[{key!r}]", kind)) for key, items in value.items()}
