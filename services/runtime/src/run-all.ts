import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { errorMessage } from "./errors.js";
import {
  baseConfigShape,
  createLogger,
  type Logger,
  loadConfig,
  port,
  runMain,
  SERVICE_NODE_FLAGS,
  telemetryEnabled,
} from "./index.js";

/**
 * `make run`: starts every service as its own process on embedded defaults
 * (no NATS, no collector, no API keys), then the gateway pointed at them.
 * The services are located by path, not imported: the runtime imports no service.
 * With an OTLP endpoint in OTEL_*, every service starts with the tracing preload;
 * with TOOLPLANE_METRICS_PORT=N the gateway serves /metrics on N and the
 * backends on N+1.. (0 gives each an ephemeral port).
 *
 * A service that cannot start stops everything, and the failure names the first
 * cause in one line. A service that dies after it started is restarted on the
 * same address with exponential backoff while the others keep serving.
 */
const servicesRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const BACKENDS = [
  { name: "image", portVariable: "TOOLPLANE_IMAGE_PORT", addressVariable: "TOOLPLANE_IMAGE_ADDR" },
  { name: "code", portVariable: "TOOLPLANE_CODE_PORT", addressVariable: "TOOLPLANE_CODE_ADDR" },
  { name: "search", portVariable: "TOOLPLANE_SEARCH_PORT", addressVariable: "TOOLPLANE_SEARCH_ADDR" },
] as const;

/** Restart delays: doubling from the first to the cap; a service that stayed up this long starts over at the first. */
const RESTART_BACKOFF = { firstMs: 500, maxMs: 30_000, resetAfterUpMs: 60_000 };
/** How long a dead service's last stderr lines may trail its exit (they name the cause). */
const STDERR_TRAIL_MS = 1000;

interface ServiceCommand {
  name: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Beyond the services' own shutdown grace, before a service that will not stop is killed. */
  stopGraceMs: number;
}

/** One service process: started once, restarted on the address it bound whenever it dies after starting. */
class SupervisedService {
  private child: ChildProcess | undefined;
  private address: string | undefined;
  private nextDelayMs = RESTART_BACKOFF.firstMs;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(
    private readonly command: ServiceCommand,
    private readonly logger: Logger,
  ) {}

  /** Resolves with the address the service listens on; rejects with its own first error line if it exits first. */
  async start(grpcPort: number): Promise<string> {
    this.address = await this.launch(String(grpcPort));
    return this.address;
  }

  private launch(grpcPort: string): Promise<string> {
    const { name, args, env } = this.command;
    const child = spawn(process.execPath, args, {
      env: { ...env, TOOLPLANE_GRPC_PORT: grpcPort },
      // Its own process group: Ctrl-C reaches run-all alone, which then sends each service one SIGTERM (a service
      // sent SIGINT by the terminal and SIGTERM by run-all would take the second as "exit now", skipping its drain).
      // The IPC channel stops the service if run-all itself dies (runMain).
      detached: true,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    this.child = child;
    const startedAt = Date.now();
    this.logger.info({ child: name, pid: child.pid }, "service process started");
    let listening = false;
    let firstCause: string | undefined;
    let lastLine = "";
    const stderr = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    const stderrClosed = once(stderr, "close");
    stderr.on("line", (line) => {
      process.stderr.write(`${line}\n`);
      if (line.trim() === "") return;
      lastLine = line;
      // A service names its own failure in one line (runMain): "<process>: failed to start: <cause>".
      const failure = /^\S+: (?:failed to start: )?(.*)$/.exec(line);
      if (failure && /: failed to start: |: invalid environment variable /.test(line)) firstCause ??= failure[1];
    });
    return new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        process.stdout.write(`${line}\n`);
        if (listening || !line.includes('"grpc server listening"')) return;
        listening = true;
        resolve((JSON.parse(line) as { address: string }).address);
      });
      child.once("error", (error) => reject(new Error(`the ${name} service could not be spawned: ${error.message}`)));
      child.once("exit", (code, signal) => {
        const exit = signal ?? `code ${code}`;
        void Promise.race([stderrClosed, sleep(STDERR_TRAIL_MS)]).then(() => {
          const cause = firstCause ?? (lastLine || `exited with ${exit}`);
          if (this.stopping) reject(new Error(`the ${name} service was stopped while starting`));
          else if (!listening) reject(new Error(`the ${name} service did not start (${exit}): ${cause}`));
          else this.died(`exited with ${exit}`, Date.now() - startedAt);
        });
      });
    });
  }

  private died(detail: string, upMs: number): void {
    if (this.stopping) return;
    if (upMs >= RESTART_BACKOFF.resetAfterUpMs) this.nextDelayMs = RESTART_BACKOFF.firstMs;
    const delayMs = this.nextDelayMs;
    this.nextDelayMs = Math.min(delayMs * 2, RESTART_BACKOFF.maxMs);
    const { name } = this.command;
    this.logger.error({ child: name, detail, restartInMs: delayMs }, "service died; restarting it");
    this.restartTimer = setTimeout(() => {
      // The same port again: the gateway (and the code service) keep the address they were given.
      const grpcPort = this.address?.slice(this.address.lastIndexOf(":") + 1) ?? "0";
      const restartedAt = Date.now();
      this.launch(grpcPort).then(
        (address) => this.logger.info({ child: name, address }, "service restarted"),
        (error: unknown) => this.died(errorMessage(error), Date.now() - restartedAt),
      );
    }, delayMs);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), this.command.stopGraceMs);
    await exited;
    clearTimeout(killer);
  }
}

runMain("toolplane", async () => {
  const config = loadConfig({
    ...baseConfigShape,
    TOOLPLANE_GATEWAY_PORT: port(50051),
    TOOLPLANE_IMAGE_PORT: port(50052),
    TOOLPLANE_CODE_PORT: port(50053),
    TOOLPLANE_SEARCH_PORT: port(50054),
  });
  const tracing = telemetryEnabled();
  const preload = join(dirname(fileURLToPath(import.meta.url)), "telemetry-register.js");
  const metricsPort = (offset: number): Record<string, string> => {
    const base = config.TOOLPLANE_METRICS_PORT;
    if (base === undefined) return {};
    return { TOOLPLANE_METRICS_PORT: String(base === 0 ? 0 : base + offset) };
  };
  const logger = createLogger("run-all", config.TOOLPLANE_LOG_LEVEL);
  const services: SupervisedService[] = [];
  const stopAll = async () => {
    await Promise.all(services.map((service) => service.stop()));
  };

  const start = (name: string, grpcPort: number, env: Record<string, string>): Promise<string> => {
    const main = join(servicesRoot, name, "src", "main.js");
    const service = new SupervisedService(
      {
        name,
        args: [...SERVICE_NODE_FLAGS, ...(tracing ? ["--import", preload] : []), main],
        env: { ...process.env, OTEL_SERVICE_NAME: process.env.OTEL_SERVICE_NAME ?? `toolplane-${name}`, ...env },
        stopGraceMs: config.TOOLPLANE_SHUTDOWN_GRACE_MS + 5000,
      },
      logger,
    );
    services.push(service);
    return service.start(grpcPort);
  };

  let gateway: string;
  try {
    const addresses: Record<string, string> = {};
    for (const [index, backend] of BACKENDS.entries()) {
      // Earlier backends' addresses go to later ones: the code service calls the image service for JS image ops.
      addresses[backend.addressVariable] = await start(backend.name, config[backend.portVariable], {
        ...addresses,
        ...metricsPort(index + 1),
      });
    }
    gateway = await start("gateway", config.TOOLPLANE_GATEWAY_PORT, { ...addresses, ...metricsPort(0) });
  } catch (error) {
    await stopAll();
    throw error;
  }
  process.stderr.write(`\ntoolplane is up: gateway listening on ${gateway} (Ctrl-C stops everything)\n\n`);
  return { logger, stoppable: { stop: stopAll } };
});
