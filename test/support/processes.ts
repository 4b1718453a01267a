import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { SERVICE_NODE_FLAGS } from "../../services/runtime/src/node-flags.js";

/** dist/ root of the compiled project (this file lives in dist/test/support). */
export const distRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface SpawnedProcess {
  child: ChildProcess;
  /** Lines the process wrote to stdout and stderr so far (for assertions and failure messages). */
  output: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function track(child: ChildProcess): SpawnedProcess {
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on("line", (line) => output.push(line));
  }
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    output,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export interface SpawnedService extends SpawnedProcess {
  /** host:port the service bound. */
  address: string;
}

/**
 * Starts a compiled service (`dist/services/<name>/src/main.js`) on an ephemeral
 * port and resolves once it logs that it listens.
 */
export async function spawnService(name: string, env: Record<string, string> = {}): Promise<SpawnedService> {
  const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, join(distRoot, "services", name, "src", "main.js")], {
    env: { ...process.env, TOOLPLANE_GRPC_PORT: "0", TOOLPLANE_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const tracked = track(child);
  const address = await new Promise<string>((resolve, reject) => {
    // A service that never says it listens is killed, so a failed start leaves nothing running.
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not start:\n${tracked.output.join("\n")}`));
    }, 30_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${tracked.output.join("\n")}`));
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      if (!line.includes('"grpc server listening"')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { address: string }).address);
    });
  });
  return { ...tracked, address };
}

/**
 * The current /metrics text of a process started with TOOLPLANE_METRICS_PORT=0
 * (it logs the ephemeral address as "metrics listening").
 */
export async function scrapeMetrics(service: { output: string[] }): Promise<string> {
  const line = service.output.find((entry) => entry.includes('"msg":"metrics listening"'));
  if (line === undefined) throw new Error(`no "metrics listening" line in:\n${service.output.join("\n")}`);
  const { address } = JSON.parse(line) as { address: string };
  const response = await fetch(`http://${address}/metrics`);
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`);
  return response.text();
}

/** The value of one series in a Prometheus text exposition, e.g. `toolplane_queue_depth{queue="x"}`; undefined when absent. */
export function metricValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the export-trajectory CLI (compiled) to its end with `env` over this process's, collecting its output. */
export function runExportCli(args: string[], env: Record<string, string>): Promise<Finished> {
  const cli = join(distRoot, "services", "runtime", "src", "cli", "export-trajectory.js");
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

/** A free TCP port on loopback (for binaries that cannot bind port 0 and report it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export interface SpawnedNats extends SpawnedProcess {
  url: string;
  port: number;
  storeDir: string;
}

/** Starts a real nats-server with JetStream on a free loopback port. */
export async function spawnNats(port?: number, storeDir?: string): Promise<SpawnedNats> {
  const chosenPort = port ?? (await freePort());
  const dir = storeDir ?? mkdtempSync(join(tmpdir(), "toolplane-nats-"));
  const child = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(chosenPort), "-js", "-sd", dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const tracked = track(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`nats-server did not start:\n${tracked.output.join("\n")}`));
    }, 15_000);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
      if (line.includes("Server is ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    ...tracked,
    url: `nats://127.0.0.1:${chosenPort}`,
    port: chosenPort,
    storeDir: dir,
    async stop(signal?: NodeJS.Signals) {
      const code = await tracked.stop(signal);
      if (storeDir === undefined) rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Polls `condition` every 50 ms until it holds; throws after `timeoutMs`, naming `what`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
