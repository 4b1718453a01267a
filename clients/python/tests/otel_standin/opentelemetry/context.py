"""The current context: an immutable mapping in a contextvar (so each thread and asyncio task has its own)."""

from __future__ import annotations

import contextvars
from types import MappingProxyType
from typing import Any, Mapping, Optional

Context = Mapping[str, Any]
_EMPTY: Context = MappingProxyType({})
_CURRENT: contextvars.ContextVar[Context] = contextvars.ContextVar("current_context", default=_EMPTY)


def get_current() -> Context:
    return _CURRENT.get()


def get_value(key: str, context: Optional[Context] = None) -> Any:
    return (context if context is not None else get_current()).get(key)


def set_value(key: str, value: Any, context: Optional[Context] = None) -> Context:
    values = dict(context if context is not None else get_current())
    values[key] = value
    return MappingProxyType(values)


def attach(context: Context) -> contextvars.Token:
    return _CURRENT.set(context)


def detach(token: contextvars.Token) -> None:
    _CURRENT.reset(token)
