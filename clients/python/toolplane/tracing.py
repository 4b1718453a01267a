"""Trace context for calls to the gateway: W3C `traceparent` from the caller's OpenTelemetry context.

When the `opentelemetry` API is importable and a span is current (e.g. verl's or vLLM's generation span), every call
carries that span's `traceparent` (and `tracestate`, `baggage`: whatever the globally configured propagator writes),
so the gateway's spans join the caller's trace in Jaeger. Without `opentelemetry`, or without a current span, calls
carry only the metadata the caller gave. opentelemetry is never a dependency of this package.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

Metadata = Tuple[Tuple[str, str], ...]

try:
    from opentelemetry import propagate as _propagate
except ImportError:  # the API is optional: no propagation
    _propagate: Optional[Any] = None  # type: ignore[no-redef]


def call_metadata(metadata: Metadata) -> Metadata:
    """`metadata` plus the current OpenTelemetry context's propagation headers (a key the caller set wins)."""
    if _propagate is None:
        return metadata
    carrier: Dict[str, str] = {}
    _propagate.inject(carrier)
    if not carrier:
        return metadata
    given = {key.lower() for key, _value in metadata}
    # gRPC metadata keys are lowercase ASCII; propagators write lowercase names already.
    return metadata + tuple((key.lower(), value) for key, value in carrier.items() if key.lower() not in given)
