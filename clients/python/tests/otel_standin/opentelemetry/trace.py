"""Span contexts and the current span, as opentelemetry.trace names them."""

from __future__ import annotations

from typing import NamedTuple, Optional

from . import context as _context

_SPAN_KEY = "current-span"


class TraceFlags(int):
    SAMPLED = 0x01


class SpanContext(NamedTuple):
    trace_id: int
    span_id: int
    is_remote: bool
    trace_flags: TraceFlags = TraceFlags(0)
    trace_state: Optional[str] = None

    @property
    def is_valid(self) -> bool:
        return 0 < self.trace_id < 2**128 and 0 < self.span_id < 2**64


INVALID_SPAN_CONTEXT = SpanContext(trace_id=0, span_id=0, is_remote=False)


class NonRecordingSpan:
    """A span that only carries its context (what an extracted remote parent is)."""

    def __init__(self, span_context: SpanContext) -> None:
        self._span_context = span_context

    def get_span_context(self) -> SpanContext:
        return self._span_context


INVALID_SPAN = NonRecordingSpan(INVALID_SPAN_CONTEXT)


def set_span_in_context(span: NonRecordingSpan, context: Optional[_context.Context] = None) -> _context.Context:
    return _context.set_value(_SPAN_KEY, span, context)


def get_current_span(context: Optional[_context.Context] = None) -> NonRecordingSpan:
    span = _context.get_value(_SPAN_KEY, context)
    return span if isinstance(span, NonRecordingSpan) else INVALID_SPAN
