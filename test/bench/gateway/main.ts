/**
 * Gateway overhead: the same search call made directly on the search service
 * (the baseline) and through the gateway's Execute, by 1, 64 and 512 concurrent
 * callers in closed loops, in one run. Prints p50/p99 latency of both, the
 * gateway's added latency and calls/s. The search service runs its local
 * provider and answers the repeated query from its cache, so the figures are
 * dominated by RPC and gateway work, not by search.
 *
 *   node dist/test/bench/gateway/main.js [--quick] [--seconds N]
 */
import { readFileSync } from "node:fs";
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

async function main(): Promise<void> {
  const running: SpawnedService[] = [];
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
    const searchClient = createClient(SearchServiceClient, search.address);
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
    const direct = async () => {
      await invoke(searchClient, searchClient.search, request);
    };
    const metadata = (caller: number) => {
      const value = new Metadata();
      value.set("toolplane-client-id", `worker-${caller % 8}`);
      return value;
    };
    const viaGateway = async (caller: number) => {
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
    };
    // Warm up connections, the JIT and the search cache.
    await closedLoop(8, quick ? 100 : 1000, direct);
    await closedLoop(8, quick ? 100 : 1000, viaGateway);

    process.stdout.write(
      `gateway bench (${quick ? "quick, " : ""}${seconds}s per level; baseline = direct SearchService.Search on the same service)\n`,
    );
    process.stdout.write(
      "callers | direct p50    p99 | gateway p50    p99 | added p50    p99 | direct calls/s | gateway calls/s | ratio gw/direct p99\n",
    );
    let failures = 0;
    const cpu: string[] = [];
    for (const callers of levels) {
      const searchCpu0 = cpuSeconds(search.child.pid);
      const d = await closedLoop(callers, seconds * 1000, direct);
      const searchCpu1 = cpuSeconds(search.child.pid);
      const gatewayCpu1 = cpuSeconds(gateway.child.pid);
      const g = await closedLoop(callers, seconds * 1000, viaGateway);
      const searchCpu2 = cpuSeconds(search.child.pid);
      const gatewayCpu2 = cpuSeconds(gateway.child.pid);
      const perCallUs = (cpuSecondsUsed: number, calls: number) =>
        ((cpuSecondsUsed * 1e6) / Math.max(1, calls)).toFixed(0);
      cpu.push(
        `${String(callers).padStart(7)} | search CPU per direct call ${perCallUs(searchCpu1 - searchCpu0, d.latencies.length)} us | per gateway call: search ${perCallUs(searchCpu2 - searchCpu1, g.latencies.length)} us + gateway ${perCallUs(gatewayCpu2 - gatewayCpu1, g.latencies.length)} us`,
      );
      failures += d.errors + g.errors;
      const [dp50, dp99, gp50, gp99] = [
        percentile(d.latencies, 50),
        percentile(d.latencies, 99),
        percentile(g.latencies, 50),
        percentile(g.latencies, 99),
      ];
      process.stdout.write(
        `${String(callers).padStart(7)} | ${fmt(dp50)} ${fmt(dp99)} | ${fmt(gp50)} ${fmt(gp99)} | ${fmt(gp50 - dp50)} ${fmt(gp99 - dp99)} | ${(d.latencies.length / d.seconds).toFixed(0).padStart(14)} | ${(g.latencies.length / g.seconds).toFixed(0).padStart(15)} | ${(gp99 / dp99).toFixed(2).padStart(6)}${d.errors + g.errors > 0 ? `  (errors: direct ${d.errors}, gateway ${g.errors})` : ""}\n`,
      );
    }
    process.stdout.write("latencies in ms; target: added p99 <= 2 ms at 64 callers\n");
    process.stdout.write(`CPU per call (from /proc, 10 ms ticks):\n${cpu.join("\n")}\n`);
    if (failures > 0) {
      process.stderr.write(`${failures} calls failed\n`);
      process.exitCode = 1;
    }
    searchClient.close();
    gatewayClient.close();
  } finally {
    for (const service of running.reverse()) await service.stop();
  }
}

await main();
