"""propagate.inject with the default W3C trace-context propagator."""

from __future__ import annotations

from typing import Any, MutableMapping, Optional

from . import trace
from .context import Context


def inject(carrier: MutableMapping[str, str], context: Optional[Context] = None, setter: Any = None) -> None:
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return
    flags = int(span_context.trace_flags)
    carrier["traceparent"] = f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"
    if span_context.trace_state:
        carrier["tracestate"] = span_context.trace_state
