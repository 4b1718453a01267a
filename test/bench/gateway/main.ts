/**
 * Gateway overhead: the same search call made directly on the search service
 * (the baseline), through a bare gRPC pass-through proxy (proxy.ts: the cost of
 * any extra hop in Node) and through the gateway's Execute, in one run, two ways:
 *
 * - closed loops of 1, 64 and 512 callers, each sending its next call as soon as
 *   the previous one answers. From 64 callers on this saturates the machine, and
 *   then latency = callers / throughput: the added latency is mostly the CPU the
 *   extra hop burns on cores it shares with the search service and the callers.
 * - paced: 64 callers that each wait a think time between calls (a trajectory
 *   generating tokens), together offering a fixed rate (--rate, default 1000
 *   calls/s) well inside what every target sustains. Think times are random
 *   (exponential, so arrivals are Poisson) from a fixed seed, so the three targets
 *   see the same schedule. This is what a trainer with 64 trajectories in flight
 *   sees: the tool side is not saturated.
 *
 * Prints p50/p99 latency (measured from sending), the added latency over the
 * direct call, calls/s and CPU per call of each process. The search service runs
 * its local provider and answers the repeated query from its cache, so the figures
 * are dominated by RPC and gateway work.
 *
 * `--levels 64` runs only the listed closed-loop levels (comma-separated);
 * `--node-flags "--max-semi-space-size=4"` starts the gateway and the proxy (both:
 * the proxy is the floor the gateway is judged against) with those node/V8 flags,
 * for runtime-flag experiments.
 *
 *   node dist/test/bench/gateway/main.js [--quick] [--seconds N] [--rate N] [--levels N,N] [--node-flags "..."]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Metadata } from "@grpc/grpc-js";
import { ImageDelivery, ToolGatewayClient } from "../../../generated/toolplane/gateway/v1/gateway.js";
import { type SearchRequest, SearchServiceClient } from "../../../generated/toolplane/search/v1/search.js";
import { createClient, invoke, seededRandom } from "../../../services/runtime/src/index.js";
import { SERVICE_NODE_FLAGS } from "../../../services/runtime/src/node-flags.js";
import { distRoot, freePort, type SpawnedService, spawnService } from "../../support/processes.js";

const quick = process.argv.includes("--quick");
function numberArgument(name: string, fallback: number): number {
  const index = process.argv.indexOf(name);
  if (index < 0) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!(value > 0)) throw new Error(`${name} must be a positive number, got "${process.argv[index + 1]}"`);
  return value;
}
function stringArgument(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index < 0 ? undefined : (process.argv[index + 1] ?? "");
}
const seconds = numberArgument("--seconds", quick ? 0.3 : 4);
const levels = (stringArgument("--levels") ?? "1,64,512").split(",").map((level) => {
  const callers = Number(level);
  if (!(Number.isInteger(callers) && callers > 0)) throw new Error(`--levels takes positive integers, got "${level}"`);
  return callers;
});
/** Extra node/V8 flags for the gateway and proxy processes (--node-flags, split on spaces). */
const nodeFlags = (stringArgument("--node-flags") ?? "").split(" ").filter((flag) => flag !== "");
/** The paced run: this many callers together offering `rate` calls/s, twice as long as a closed-loop level. */
const PACED_CALLERS = 64;
const rate = numberArgument("--rate", 1000);
const pacedSeconds = seconds * 2;
const PACED_SEED = 7;
const QUERY = "capital of France";
const TARGET_ADDED_P99_MS = 2;

interface Measured {
  latencies: number[];
  seconds: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Latencies of the calls that answered and the count of those that failed, for one loop. */
class CallRecorder {
  private readonly latencies: number[] = [];
  private errors = 0;

  async time(call: () => Promise<void>): Promise<void> {
    const t0 = performance.now();
    try {
      await call();
      this.latencies.push(performance.now() - t0);
    } catch {
      this.errors += 1;
    }
  }

  measured(started: number): Measured {
    const latencies = this.latencies.sort((a, b) => a - b);
    return { latencies, seconds: (performance.now() - started) / 1000, errors: this.errors };
  }
}

/** `callers` closed loops calling `once` until `durationMs` has passed. */
async function closedLoop(
  callers: number,
  durationMs: number,
  once: (caller: number) => Promise<void>,
): Promise<Measured> {
  const recorder = new CallRecorder();
  const started = performance.now();
  const end = started + durationMs;
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      do {
        await recorder.time(() => once(caller));
      } while (performance.now() < end);
    }),
  );
  return recorder.measured(started);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * `callers` callers, each calling `once` on its own schedule of exponential gaps
 * (mean callers / rate), until `durationMs` has passed: together they offer `rate`
 * calls/s. A caller waits out what is left of its gap after a call (its think
 * time); a call that overran its gap is followed by the next one at once, so a
 * target that keeps up receives the offered rate whatever its latency.
 */
async function pacedLoop(
  callers: number,
  callsPerSecond: number,
  durationMs: number,
  once: (caller: number) => Promise<void>,
): Promise<Measured> {
  const recorder = new CallRecorder();
  const meanGapMs = (callers / callsPerSecond) * 1000;
  const started = performance.now();
  const end = started + durationMs;
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      const random = seededRandom(PACED_SEED + caller);
      const gap = () => -Math.log(1 - random()) * meanGapMs;
      for (let next = started + gap(); next < end; next += gap()) {
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        await recorder.time(() => once(caller));
      }
    }),
  );
  return recorder.measured(started);
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; clock ticks of 10 ms). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

function fmt(ms: number): string {
  return ms.toFixed(2).padStart(8);
}

interface Target {
  name: string;
  once: (caller: number) => Promise<void>;
  /** Processes whose CPU the target's calls use besides the load generator. */
  processes: { name: string; pid: number | undefined }[];
}

interface Listening {
  address: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts a node script that logs "grpc server listening" and resolves with its
 * address. Its later stdout is read and dropped, not kept: the gateway logs one
 * line per call, and parsing and keeping those here would load the load generator
 * (on the same cores) only while it measures the gateway.
 */
async function spawnListening(script: string, args: string[], env: Record<string, string>): Promise<Listening> {
  // The service flags as the gateway runs in production (the bare proxy gets them too: same runtime for both hops).
  const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, ...nodeFlags, script, ...args], {
    env: { ...process.env, TOOLPLANE_GRPC_PORT: "0", TOOLPLANE_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const stdout = child.stdout as NodeJS.ReadableStream;
  const lines = createInterface({ input: stdout });
  const address = await new Promise<string>((resolve, reject) => {
    // One that never says it listens is killed, so a failed start leaves nothing running.
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${script} did not start within 30 s`));
    }, 30_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code}`));
    });
    lines.on("line", (line) => {
      if (!line.includes('"grpc server listening"')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { address: string }).address);
    });
  });
  lines.close();
  stdout.resume();
  return {
    address,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** One target's figures over one run of a loop. */
interface Row {
  p50: number;
  p99: number;
  callsPerSecond: number;
  /** "search 80 + gateway 250": µs of CPU per call of each process. */
  cpu: string;
  errors: number;
}

async function measure(target: Target, run: (once: Target["once"]) => Promise<Measured>): Promise<Row> {
  const before = target.processes.map((proc) => cpuSeconds(proc.pid));
  const measured = await run(target.once);
  const calls = Math.max(1, measured.latencies.length);
  const cpu = target.processes
    .map(
      (proc, index) =>
        `${proc.name} ${(((cpuSeconds(proc.pid) - (before[index] as number)) * 1e6) / calls).toFixed(0)}`,
    )
    .join(" + ");
  return {
    p50: percentile(measured.latencies, 50),
    p99: percentile(measured.latencies, 99),
    callsPerSecond: measured.latencies.length / measured.seconds,
    cpu,
    errors: measured.errors,
  };
}

function added(target: Target, row: Row, baseline: Row): string {
  return target.name === "direct"
    ? "        -         -"
    : `${fmt(row.p50 - baseline.p50)}  ${fmt(row.p99 - baseline.p99)}`;
}

function errorNote(row: Row): string {
  return row.errors > 0 ? `  (${row.errors} errors)` : "";
}

function verdict(addedP99: number): string {
  if (quick) return "not judged in --quick";
  return addedP99 <= TARGET_ADDED_P99_MS ? "met" : "NOT met";
}

async function main(): Promise<void> {
  const running: SpawnedService[] = [];
  const started: Listening[] = [];
  try {
    // Its image host gets a free port too: the default one may be taken by another running instance.
    const search = await spawnService("search", { TOOLPLANE_SEARCH_IMAGE_PORT: String(await freePort()) });
    running.push(search);
    const gateway = await spawnListening(join(distRoot, "services", "gateway", "src", "main.js"), [], {
      TOOLPLANE_SEARCH_ADDR: search.address,
      TOOLPLANE_GATEWAY_SEARCH_CONCURRENCY: "64",
      TOOLPLANE_GATEWAY_SEARCH_QUEUE: "1024",
    });
    started.push(gateway);
    const proxy = await spawnListening(join(dirname(fileURLToPath(import.meta.url)), "proxy.js"), [search.address], {});
    started.push(proxy);
    const searchClient = createClient(SearchServiceClient, search.address);
    const proxyClient = createClient(SearchServiceClient, proxy.address);
    const gatewayClient = createClient(ToolGatewayClient, gateway.address);
    const request: SearchRequest = { query: QUERY, topK: 5, provider: "", cachePolicy: 0, language: "", region: "" };

    const maxCallers = Math.max(...levels, PACED_CALLERS);
    const sessions: string[] = [];
    for (let i = 0; i < maxCallers; i++) {
      const created = await invoke(gatewayClient, gatewayClient.createSession, {
        rolloutId: "bench",
        trajectoryId: "",
        images: [],
        idleTtlSeconds: 0,
      });
      sessions.push(created.sessionId);
    }
    const metadata = (caller: number) => {
      const value = new Metadata();
      value.set("toolplane-client-id", `worker-${caller % 8}`);
      return value;
    };
    const searchProcess = { name: "search", pid: search.child.pid };
    const targets: Target[] = [
      {
        name: "direct",
        once: async () => {
          await invoke(searchClient, searchClient.search, request);
        },
        processes: [searchProcess],
      },
      {
        name: "proxy",
        once: async () => {
          await invoke(proxyClient, proxyClient.search, request);
        },
        processes: [searchProcess, { name: "proxy", pid: proxy.child.pid }],
      },
      {
        name: "gateway",
        once: async (caller) => {
          const response = await invoke(
            gatewayClient,
            gatewayClient.execute,
            {
              sessionId: sessions[caller] as string,
              call: { callId: "c", name: "search", argumentsJson: JSON.stringify({ query: QUERY }) },
              timeoutMs: 30_000,
              imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
              step: 0,
            },
            {},
            metadata(caller),
          );
          if (response.result?.error) throw new Error(response.result.error.message);
        },
        processes: [searchProcess, { name: "gateway", pid: gateway.child.pid }],
      },
    ];
    // Warm up connections, the JIT and the search cache.
    for (const target of targets) await closedLoop(8, quick ? 100 : 1000, target.once);

    if (nodeFlags.length > 0) process.stdout.write(`gateway and proxy started with: node ${nodeFlags.join(" ")}\n`);
    process.stdout.write(
      `gateway bench (${quick ? "quick, " : ""}baseline = direct SearchService.Search on the same service; proxy = bare gRPC pass-through; ${cpus().length} cores shared by the callers, search, proxy and gateway)\n\n`,
    );
    process.stdout.write(
      `closed loops, ${seconds}s per level and target: each caller sends its next call as soon as the previous one answers.\n` +
        "From 64 callers on the cores are saturated: latency = callers / throughput, so added latency here is mostly the CPU the extra hop burns.\n",
    );
    process.stdout.write(
      "callers | target  |      p50      p99 | added p50 added p99 | calls/s | CPU per call (us, /proc 10 ms ticks)\n",
    );
    let failures = 0;
    const closedAdded = new Map<string, number>();
    let lowestAt64 = Number.POSITIVE_INFINITY;
    for (const callers of levels) {
      let baseline: Row | undefined;
      for (const target of targets) {
        const row = await measure(target, (once) => closedLoop(callers, seconds * 1000, once));
        failures += row.errors;
        baseline ??= row;
        if (callers === PACED_CALLERS) {
          closedAdded.set(target.name, row.p99 - baseline.p99);
          lowestAt64 = Math.min(lowestAt64, row.callsPerSecond);
        }
        process.stdout.write(
          `${String(callers).padStart(7)} | ${target.name.padEnd(7)} | ${fmt(row.p50)} ${fmt(row.p99)} | ${added(target, row, baseline)} | ${row.callsPerSecond.toFixed(0).padStart(7)} | ${row.cpu}${errorNote(row)}\n`,
        );
      }
    }

    process.stdout.write(
      `\npaced, ${pacedSeconds}s per target: ${PACED_CALLERS} callers, each waiting a think time (exponential, seed ${PACED_SEED}) between calls, ` +
        `together offering ${rate} calls/s` +
        (Number.isFinite(lowestAt64)
          ? ` (${((100 * rate) / lowestAt64).toFixed(0)} % of the lowest closed-loop throughput at ${PACED_CALLERS} callers above).\n`
          : ".\n"),
    );
    process.stdout.write(
      "target  | offered achieved |      p50      p99 | added p50 added p99 | CPU per call (us, /proc 10 ms ticks)\n",
    );
    const pacedAdded = new Map<string, number>();
    let baseline: Row | undefined;
    for (const target of targets) {
      const row = await measure(target, (once) => pacedLoop(PACED_CALLERS, rate, pacedSeconds * 1000, once));
      failures += row.errors;
      baseline ??= row;
      pacedAdded.set(target.name, row.p99 - baseline.p99);
      const short = row.callsPerSecond < 0.95 * rate ? "  (below the offered rate: saturated)" : "";
      process.stdout.write(
        `${target.name.padEnd(7)} | ${String(rate).padStart(7)} ${row.callsPerSecond.toFixed(0).padStart(8)} | ${fmt(row.p50)} ${fmt(row.p99)} | ${added(target, row, baseline)} | ${row.cpu}${errorNote(row)}${short}\n`,
      );
    }

    const pacedP99 = pacedAdded.get("gateway") ?? Number.NaN;
    const closedP99 = closedAdded.get("gateway") ?? Number.NaN;
    process.stdout.write(
      `\nlatencies in ms, measured from sending; added = over the direct call in the same mode (and level).\n` +
        `target (issue 7): gateway added p99 <= ${TARGET_ADDED_P99_MS} ms at ${PACED_CALLERS} callers\n` +
        `  paced at ${rate} calls/s: ${pacedP99.toFixed(2)} ms (${verdict(pacedP99)}; bare proxy ${(pacedAdded.get("proxy") ?? Number.NaN).toFixed(2)} ms)\n` +
        (levels.includes(PACED_CALLERS)
          ? `  closed loop (saturated): ${closedP99.toFixed(2)} ms (${verdict(closedP99)}; bare proxy ${(closedAdded.get("proxy") ?? Number.NaN).toFixed(2)} ms)\n`
          : `  closed loop: not run (--levels without ${PACED_CALLERS})\n`),
    );
    if (failures > 0) {
      process.stderr.write(`${failures} calls failed\n`);
      process.exitCode = 1;
    }
    searchClient.close();
    proxyClient.close();
    gatewayClient.close();
  } finally {
    for (const listening of started.reverse()) await listening.stop();
    for (const service of running.reverse()) await service.stop();
  }
}

await main();
