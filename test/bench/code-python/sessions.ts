/**
 * Session-scale measurements for the Python backend: a burst of CreateSession
 * calls at once, the memory (PSS) each idle session costs, and a thousand open
 * sessions each running a cell. Used by main.ts for the zygote (forked kernels)
 * and, in the same run, for the one-sandbox-per-session baseline.
 */
import { readFileSync } from "node:fs";
import { CodeServiceClient, Language } from "../../../generated/toolplane/code/v1/code.js";
import { createClient, invoke } from "../../../services/runtime/src/index.js";
import { descendants } from "../../support/proc.js";
import { type SpawnedService, spawnService } from "../../support/processes.js";

export interface Latencies {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function latencies(samples: number[]): Latencies {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN };
}

/** A code service and a small client for these measurements. */
export async function sessionService(env: Record<string, string>) {
  const service = await spawnService("code", env);
  const client = createClient(CodeServiceClient, service.address);
  const create = (
    images: { name: string; image: { data: Buffer; mimeType: string; width: number; height: number } }[] = [],
  ) =>
    invoke(client, client.createSession, {
      language: Language.LANGUAGE_PYTHON,
      images,
      limits: undefined,
      idleTtlSeconds: 0,
      label: "bench",
    });
  const execute = async (sessionId: string, code: string) => {
    const response = await invoke(client, client.execute, { sessionId, code, timeoutMs: 0, fixIndentation: false });
    if (response.error) throw new Error(`bench cell failed: ${response.error.traceback}`);
    return response;
  };
  const close = (sessionId: string) => invoke(client, client.closeSession, { sessionId });
  return {
    service,
    create,
    execute,
    close,
    stop: async () => {
      client.close();
      await service.stop();
    },
  };
}

export type SessionService = Awaited<ReturnType<typeof sessionService>>;

/** One CreateSession of a burst, in epoch ms (comparable with the service's log times) and server-side ms. */
export interface BurstCall {
  sessionId: string;
  sentAt: number;
  answeredAt: number;
  /** Timing.total_ms: from the service's handler start to its answer. */
  serverMs: number;
}

/** `n` CreateSession calls at the same moment; each call's latency as the caller sees it, and its times. */
export async function burst(
  api: SessionService,
  n: number,
): Promise<{ latency: Latencies; sessions: string[]; calls: BurstCall[] }> {
  const calls: BurstCall[] = [];
  const sessions = await Promise.all(
    Array.from({ length: n }, async () => {
      const sentAt = performance.timeOrigin + performance.now();
      const { sessionId, timing } = await api.create();
      calls.push({
        sessionId,
        sentAt,
        answeredAt: performance.timeOrigin + performance.now(),
        serverMs: timing?.totalMs ?? 0,
      });
      return sessionId;
    }),
  );
  return { latency: latencies(calls.map((call) => call.answeredAt - call.sentAt)), sessions, calls };
}

/** Runs `work` over `items` with at most `limit` in flight. */
export async function inBatches<T>(items: T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

function rollupKb(pid: number, field: string): number {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    return Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

function nsDepth(pid: number): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((entry) => entry.startsWith("NSpid:"));
    return line ? line.slice(6).trim().split(/\s+/).length : 0;
  } catch {
    return 0;
  }
}

export interface SessionMemory {
  /** Sessions (kernels) found, including the warm pool's. */
  kernels: number;
  /** PSS of one idle session: its kernel plus its init and watcher (zygote start), or its sandbox (baseline). */
  pssPerSessionMb: number;
  /** RSS of one kernel, for comparison (shared pages counted in full). */
  rssPerKernelMb: number;
  /** PSS of the shared zygote itself (paid once per service), 0 for the baseline. */
  zygotePssMb: number;
}

/**
 * PSS from /proc/<pid>/smaps_rollup: every process of the service's sandboxes
 * except the service and the zygote, divided by the number of kernels; the
 * zygote's own PSS separately.
 */
export function sessionMemory(service: SpawnedService): SessionMemory {
  const all = descendants(service.child.pid as number);
  // A forked kernel is 3 pid namespaces deep (host, zygote, session); a sandboxed kernel is a python under bwrap.
  const zygote = all.filter((pid) => cmdline(pid).includes("zygote.py") && nsDepth(pid) === 2);
  const forked = all.filter((pid) => cmdline(pid).includes("zygote.py") && nsDepth(pid) >= 3);
  const sandboxed = all.filter((pid) => cmdline(pid).includes("kernel.py") && comm(pid).startsWith("python"));
  const kernels = forked.length > 0 ? forked : sandboxed;
  const sessionProcesses =
    forked.length > 0
      ? all.filter((pid) => cmdline(pid).includes("session-init") || forked.includes(pid))
      : all.filter((pid) => !zygote.includes(pid));
  const pss = sessionProcesses.reduce((total, pid) => total + rollupKb(pid, "Pss"), 0);
  const rss = kernels.reduce((total, pid) => total + rollupKb(pid, "Rss"), 0);
  const n = Math.max(1, kernels.length);
  return {
    kernels: kernels.length,
    pssPerSessionMb: pss / 1024 / n,
    rssPerKernelMb: rss / 1024 / n,
    zygotePssMb: zygote.reduce((total, pid) => total + rollupKb(pid, "Pss"), 0) / 1024,
  };
}

export function memAvailableMb(): number {
  const line = readFileSync("/proc/meminfo", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("MemAvailable:"));
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024;
}
