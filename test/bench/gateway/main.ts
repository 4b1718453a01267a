/**
 * Gateway overhead: the same search call made directly on the search service
 * (the baseline), through a bare gRPC pass-through proxy (proxy.ts: the cost of
 * any extra hop in Node) and through the gateway's Execute, by 1, 64 and 512
 * concurrent callers in closed loops, in one run. Prints p50/p99 latency, the
 * gateway's added latency over the direct call, calls/s and CPU per call of each
 * process. The search service runs its local provider and answers the repeated
 * query from its cache, so the figures are dominated by RPC and gateway work.
 *
 *   node dist/test/bench/gateway/main.js [--quick] [--seconds N]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Metadata } from "@grpc/grpc-js";
import { ImageDelivery, ToolGatewayClient } from "../../../generated/toolplane/gateway/v1/gateway.js";
import { type SearchRequest, SearchServiceClient } from "../../../generated/toolplane/search/v1/search.js";
import { createClient, invoke } from "../../../services/runtime/src/index.js";
import { freePort, type SpawnedService, spawnService } from "../../support/processes.js";

const quick = process.argv.includes("--quick");
const secondsArgument = process.argv.indexOf("--seconds");
const seconds = secondsArgument > 0 ? Number(process.argv[secondsArgument + 1]) : quick ? 0.3 : 4;
const levels = [1, 64, 512];
const QUERY = "capital of France";

interface Measured {
  latencies: number[];
  seconds: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** `callers` closed loops calling `once` until `durationMs` has passed. */
async function closedLoop(
  callers: number,
  durationMs: number,
  once: (caller: number) => Promise<void>,
): Promise<Measured> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const end = started + durationMs;
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      do {
        const t0 = performance.now();
        try {
          await once(caller);
          latencies.push(performance.now() - t0);
        } catch {
          errors += 1;
        }
      } while (performance.now() < end);
    }),
  );
  return { latencies: latencies.sort((a, b) => a - b), seconds: (performance.now() - started) / 1000, errors };
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

/** Starts the pass-through proxy (proxy.ts) in front of `upstream`; resolves with its address once it listens. */
async function spawnProxy(upstream: string): Promise<{ address: string; child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), "proxy.js"), upstream], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const address = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`bench proxy exited with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      if (line.includes('"grpc server listening"')) resolve((JSON.parse(line) as { address: string }).address);
    });
  });
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

async function main(): Promise<void> {
  const running: SpawnedService[] = [];
  let proxy: Awaited<ReturnType<typeof spawnProxy>> | undefined;
  try {
    // Its image host gets a free port too: the default one may be taken by another running instance.
    const search = await spawnService("search", { TOOLPLANE_SEARCH_IMAGE_PORT: String(await freePort()) });
    running.push(search);
    const gateway = await spawnService("gateway", {
      TOOLPLANE_SEARCH_ADDR: search.address,
      TOOLPLANE_GATEWAY_SEARCH_CONCURRENCY: "64",
      TOOLPLANE_GATEWAY_SEARCH_QUEUE: "1024",
    });
    running.push(gateway);
    proxy = await spawnProxy(search.address);
    const searchClient = createClient(SearchServiceClient, search.address);
    const proxyClient = createClient(SearchServiceClient, proxy.address);
    const gatewayClient = createClient(ToolGatewayClient, gateway.address);
    const request: SearchRequest = { query: QUERY, topK: 5, provider: "", cachePolicy: 0, language: "", region: "" };

    const maxCallers = Math.max(...levels);
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
            { metadata: metadata(caller) },
          );
          if (response.result?.error) throw new Error(response.result.error.message);
        },
        processes: [searchProcess, { name: "gateway", pid: gateway.child.pid }],
      },
    ];
    // Warm up connections, the JIT and the search cache.
    for (const target of targets) await closedLoop(8, quick ? 100 : 1000, target.once);

    process.stdout.write(
      `gateway bench (${quick ? "quick, " : ""}${seconds}s per level and target; baseline = direct SearchService.Search on the same service; proxy = bare gRPC pass-through)\n`,
    );
    process.stdout.write(
      "callers | target  |      p50      p99 | added p50 added p99 | calls/s | CPU per call (us, /proc 10 ms ticks)\n",
    );
    let failures = 0;
    for (const callers of levels) {
      let baseline: { p50: number; p99: number } | undefined;
      for (const target of targets) {
        const before = target.processes.map((proc) => cpuSeconds(proc.pid));
        const measured = await closedLoop(callers, seconds * 1000, target.once);
        const calls = Math.max(1, measured.latencies.length);
        const cpu = target.processes
          .map(
            (proc, index) =>
              `${proc.name} ${(((cpuSeconds(proc.pid) - (before[index] as number)) * 1e6) / calls).toFixed(0)}`,
          )
          .join(" + ");
        failures += measured.errors;
        const p50 = percentile(measured.latencies, 50);
        const p99 = percentile(measured.latencies, 99);
        baseline ??= { p50, p99 };
        const added =
          target.name === "direct" ? "        -         -" : `${fmt(p50 - baseline.p50)}  ${fmt(p99 - baseline.p99)}`;
        process.stdout.write(
          `${String(callers).padStart(7)} | ${target.name.padEnd(7)} | ${fmt(p50)} ${fmt(p99)} | ${added} | ${(measured.latencies.length / measured.seconds).toFixed(0).padStart(7)} | ${cpu}${measured.errors > 0 ? `  (${measured.errors} errors)` : ""}\n`,
        );
      }
    }
    process.stdout.write(
      "latencies in ms; added = over the direct call at the same level; target: gateway added p99 <= 2 ms at 64 callers\n",
    );
    if (failures > 0) {
      process.stderr.write(`${failures} calls failed\n`);
      process.exitCode = 1;
    }
    searchClient.close();
    proxyClient.close();
    gatewayClient.close();
  } finally {
    await proxy?.stop();
    for (const service of running.reverse()) await service.stop();
  }
}

await main();
