import { type Logger, pino } from "pino";

export type { Logger };

/** One JSON line per event on stdout; `service` names the process in every line. */
export function createLogger(service: string, level: string): Logger {
  return pino({ name: service, level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime });
}
