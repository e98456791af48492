"""Reading a config dataclass's declared settings: each setting's default and help text live beside its
field (`field(default=32, metadata={"help": ...})`, as transformers' run_glue.py argument classes
declare theirs), and the command line, the profiles and every function that mirrors a setting read
them from there instead of typing the value again.
"""

from __future__ import annotations

import dataclasses


def field_of(config_class, name: str) -> dataclasses.Field:
    """The dataclass field `name` of `config_class` (a class or an instance)."""
    try:
        return config_class.__dataclass_fields__[name]
    except KeyError:
        raise KeyError(f"{getattr(config_class, '__name__', config_class)!r} has no field {name!r}") from None


def default_of(config_class, name: str):
    """The declared default of one field, e.g. `default_of(TrainConfig, "batch_size")` -> 32."""
    field = field_of(config_class, name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    if field.default is dataclasses.MISSING:
        raise ValueError(f"{name!r} has no default.")
    return field.default


def help_of(config_class, name: str) -> str | None:
    """The help text declared beside a field (None: a field set by the code, not by hand)."""
    return field_of(config_class, name).metadata.get("help")
