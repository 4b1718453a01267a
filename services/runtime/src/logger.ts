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
