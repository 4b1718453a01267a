"""Stand-in for opentelemetry-api (see ../README.md): context, trace and propagate only."""
