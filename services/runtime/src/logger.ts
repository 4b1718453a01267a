import { type Logger, pino } from "pino";
import { traceLogFields } from "./telemetry.js";

export type { Logger };

/**
 * One JSON line per event on stdout; `service` names the process in every line,
 * and lines written inside a traced call carry its trace_id and span_id.
 */
export function createLogger(service: string, level: string): Logger {
  return pino({
    name: service,
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: traceLogFields,
  });
}

/**
 * Drops every later line of `logger` and of its children (they share one destination): for a process whose stdout
 * reader is gone (a supervisor that died). pino does this itself on its first EPIPE, but an exit that comes before
 * that error is seen makes its final synchronous flush retry the broken pipe forever (sonic-boom 4.2 flushSync).
 */
export function discardLogOutput(logger: Logger): void {
  const destination = (logger as unknown as Record<symbol, Record<string, unknown>>)[pino.symbols.streamSym];
  if (!destination) return;
  destination.write = () => true;
  destination.flushSync = () => undefined;
  destination.end = () => undefined;
}
