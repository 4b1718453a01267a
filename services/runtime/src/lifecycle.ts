import { ConfigError } from "./config.js";
import { discardLogOutput, type Logger } from "./logger.js";
import { shutdownTelemetry } from "./telemetry.js";

export interface Stoppable {
  /** Drains in-flight work, then releases resources. */
  stop(): Promise<void>;
}

/**
 * Runs a service's main: a bad config prints one line per bad variable and
 * exits 1; SIGTERM/SIGINT stop the service gracefully (a second signal forces
 * exit). Signal handlers are installed before start-up, so a signal that
 * arrives while the service is still starting stops it cleanly once started.
 */
export async function runMain(service: string, start: () => Promise<{ logger: Logger; stoppable: Stoppable }>) {
  let started: { logger: Logger; stoppable: Stoppable } | undefined;
  let pendingSignal: NodeJS.Signals | undefined;
  let stopping = false;

  const stop = (signal: NodeJS.Signals, running: { logger: Logger; stoppable: Stoppable }) => {
    const { logger, stoppable } = running;
    if (stopping) {
      logger.warn({ signal }, "second signal, exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    // Spans are flushed last so the shutdown's own calls are exported too.
    stoppable
      .stop()
      .then(() => shutdownTelemetry())
      .then(
        () => {
          logger.info("stopped");
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (started) stop(signal, started);
    else pendingSignal = signal;
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // Started by a supervisor over an IPC channel (run-all): the channel closing means the supervisor is gone (killed,
  // or its terminal hung up), so this service stops as if sent SIGTERM instead of running on orphaned.
  let orphaned = false;
  if (process.send) {
    process.once("disconnect", () => {
      // The supervisor read this process's stdout: nothing reads it any more, so lines go nowhere.
      orphaned = true;
      if (started) discardLogOutput(started.logger);
      if (!stopping) onSignal("SIGTERM");
    });
  }

  try {
    started = await start();
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`${service}: ${problem}\n`);
    } else {
      process.stderr.write(`${service}: failed to start: ${startFailure(error)}\n`);
    }
    process.exit(1);
  }
  if (orphaned) discardLogOutput(started.logger);
  if (pendingSignal) stop(pendingSignal, started);
}

/** A start-up failure as one line (run-all and operators read the first cause from it); a bug keeps its kind. */
function startFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const kind = error.name === "Error" ? "" : `${error.name}: `;
  return `${kind}${error.message}`.replace(/\s*\n\s*/g, "; ");
}
