import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import {
  baseConfigShape,
  createLogger,
  loadConfig,
  metricsConfigShape,
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
 */
const servicesRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const BACKENDS = [
  { name: "image", portVariable: "TOOLPLANE_IMAGE_PORT", addressVariable: "TOOLPLANE_IMAGE_ADDR" },
  { name: "code", portVariable: "TOOLPLANE_CODE_PORT", addressVariable: "TOOLPLANE_CODE_ADDR" },
  { name: "search", portVariable: "TOOLPLANE_SEARCH_PORT", addressVariable: "TOOLPLANE_SEARCH_ADDR" },
] as const;

runMain("toolplane", async () => {
  const config = loadConfig({
    ...baseConfigShape,
    TOOLPLANE_GATEWAY_PORT: port(50051),
    TOOLPLANE_IMAGE_PORT: port(50052),
    TOOLPLANE_CODE_PORT: port(50053),
    TOOLPLANE_SEARCH_PORT: port(50054),
    ...metricsConfigShape,
  });
  const tracing = telemetryEnabled();
  const preload = join(dirname(fileURLToPath(import.meta.url)), "telemetry-register.js");
  const metricsPort = (offset: number): Record<string, string> => {
    const base = config.TOOLPLANE_METRICS_PORT;
    if (base === undefined) return {};
    return { TOOLPLANE_METRICS_PORT: String(base === 0 ? 0 : base + offset) };
  };
  const logger = createLogger("run-all", config.TOOLPLANE_LOG_LEVEL);
  const children: ChildProcess[] = [];
  let stopping = false;

  const start = (name: string, env: Record<string, string>): Promise<string> => {
    const main = join(servicesRoot, name, "src", "main.js");
    const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, ...(tracing ? ["--import", preload] : []), main], {
      env: { ...process.env, OTEL_SERVICE_NAME: process.env.OTEL_SERVICE_NAME ?? `toolplane-${name}`, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    return new Promise<string>((resolve, reject) => {
      child.once("exit", (code, signal) => {
        if (stopping) return;
        logger.error({ service: name, code, signal }, "service exited; stopping everything");
        reject(new Error(`${name} exited with ${code ?? signal}`));
        void stopAll().then(() => process.exit(1));
      });
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        process.stdout.write(`${line}\n`);
        if (line.includes('"grpc server listening"')) resolve((JSON.parse(line) as { address: string }).address);
      });
    });
  };

  const stopAll = async () => {
    stopping = true;
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGTERM");
          }),
      ),
    );
  };

  const addresses: Record<string, string> = {};
  for (const [index, backend] of BACKENDS.entries()) {
    // Earlier backends' addresses go to later ones: the code service calls the image service for JS image ops.
    addresses[backend.addressVariable] = await start(backend.name, {
      ...addresses,
      TOOLPLANE_GRPC_PORT: String(config[backend.portVariable]),
      ...metricsPort(index + 1),
    });
  }
  const gateway = await start("gateway", {
    ...addresses,
    TOOLPLANE_GRPC_PORT: String(config.TOOLPLANE_GATEWAY_PORT),
    ...metricsPort(0),
  });
  process.stderr.write(`\ntoolplane is up: gateway listening on ${gateway} (Ctrl-C stops everything)\n\n`);
  return { logger, stoppable: { stop: stopAll } };
});
