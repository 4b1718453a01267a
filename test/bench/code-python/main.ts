/**
 * Code service (Python) latency benchmark, over the real gRPC socket:
 *   node dist/test/bench/code-python/main.js [--quick]
 * Prints p50/p99 for: new session + print(1); warm execute of print(1); a
 * numpy/PIL crop of image_1; and, in the same run, the baseline of a fresh
 * `python3 -c` process per call with the same imports. Also the memory of an
 * idle session's interpreter. --quick runs a few iterations to prove it works.
 *
 * Then session scale (sessions.ts), zygote start against the one-sandbox-per-
 * session start measured in the same run: a burst of CreateSession calls at
 * once (p50/p99), PSS per idle session from /proc/<pid>/smaps_rollup, and a
 * thousand open sessions each running a cell.
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import sharp from "sharp";
import { processCpuSeconds, treeCpuSeconds } from "../../support/proc.js";
import { metricValue, type SpawnedService, scrapeMetrics } from "../../support/processes.js";
import {
  type BurstCall,
  burst,
  inBatches,
  type Latencies,
  memAvailableMb,
  type SessionMemory,
  sessionMemory,
  sessionService,
} from "./sessions.js";

const quick = process.argv.includes("--quick");
const PYTHON = process.env.TOOLPLANE_CODE_PYTHON_PATH ?? "/usr/bin/python3";
const IMPORTS = "import numpy, PIL.Image, cv2, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot";
const CROP =
  "import numpy as np\nfrom PIL import Image\ncrop = Image.fromarray(np.asarray(image_1)[100:300, 200:400])\ndisplay(crop)\ncrop.size";
const counts = quick
  ? { newSession: 3, warm: 20, crop: 10, baseline: 2, idle: 2 }
  : { newSession: 20, warm: 300, crop: 100, baseline: 10, idle: 4 };
/** Pause between new sessions so the pool (refilled one kernel at a time) is warm again, as in steady state. */
const REFILL_PAUSE_MS = quick ? 1500 : 2000;

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function summary(name: string, samples: number[]) {
  return { name, n: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

async function timed(action: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await action();
  return performance.now() - started;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const api = await sessionService({ TOOLPLANE_CODE_FORK_POOL_SIZE: "2" });
  const { service, create, execute, close } = api;

  try {
    await sleep(REFILL_PAUSE_MS);
    const newSession: number[] = [];
    for (let i = 0; i < counts.newSession; i++) {
      let sessionId = "";
      newSession.push(
        await timed(async () => {
          sessionId = (await create()).sessionId;
          await execute(sessionId, "print(1)");
        }),
      );
      await close(sessionId);
      await sleep(REFILL_PAUSE_MS);
    }

    const warmSession = (await create()).sessionId;
    await execute(warmSession, "print(1)");
    const warm: number[] = [];
    for (let i = 0; i < counts.warm; i++) warm.push(await timed(() => execute(warmSession, "print(1)")));

    const photo = await sharp({
      create: {
        width: 1024,
        height: 768,
        channels: 3,
        background: "#808080",
        noise: { type: "gaussian", mean: 128, sigma: 40 },
      },
    })
      .jpeg()
      .toBuffer();
    const imageSession = (
      await create([{ name: "image_1", image: { data: photo, mimeType: "", width: 0, height: 0 } }])
    ).sessionId;
    await execute(imageSession, CROP);
    const crop: number[] = [];
    for (let i = 0; i < counts.crop; i++) crop.push(await timed(() => execute(imageSession, CROP)));

    const baseline: number[] = [];
    for (let i = 0; i < counts.baseline; i++) {
      baseline.push(
        await timed(async () => {
          const result = spawnSync(PYTHON, ["-c", `${IMPORTS}; print(1)`], { encoding: "utf8" });
          if (result.status !== 0) throw new Error(`baseline python failed: ${result.stderr}`);
        }),
      );
    }

    const idleSessions: string[] = [];
    for (let i = 0; i < counts.idle; i++) idleSessions.push((await create()).sessionId);
    await sleep(REFILL_PAUSE_MS);
    const memory = sessionMemory(service);

    const jupyter = jupyterBaseline(quick);
    const rows = [
      summary("new session + print(1)", newSession),
      summary("warm execute print(1)", warm),
      summary("numpy/PIL crop of image_1 (+PNG out)", crop),
      summary("baseline: fresh python3 -c per call", baseline),
    ];
    const base = rows[3]?.p50 as number;
    process.stdout.write(`code-python benchmark${quick ? " (--quick: tiny run, figures are not meaningful)" : ""}\n`);
    for (const row of rows) {
      process.stdout.write(
        `${row.name.padEnd(40)} n=${String(row.n).padStart(4)}  p50=${row.p50.toFixed(2).padStart(8)} ms  p99=${row.p99.toFixed(2).padStart(8)} ms  baseline/p50=${(base / row.p50).toFixed(1)}x\n`,
      );
    }
    process.stdout.write(
      `idle session memory (mean of ${memory.kernels} kernels incl. pool): PSS ${memory.pssPerSessionMb.toFixed(1)} MB per session (kernel RSS ${memory.rssPerKernelMb.toFixed(1)} MB, shared zygote PSS ${memory.zygotePssMb.toFixed(1)} MB once)\n`,
    );
    if (jupyter) {
      const pairs: [string, JupyterFigure, (typeof rows)[number]][] = [
        ["new kernel + imports + print(1)", jupyter.new_kernel_with_imports_print, rows[0] as (typeof rows)[number]],
        ["warm print(1)", jupyter.warm_print, rows[1] as (typeof rows)[number]],
        ["warm numpy/PIL crop (+PNG)", jupyter.warm_numpy_pil_crop, rows[2] as (typeof rows)[number]],
      ];
      process.stdout.write("baseline: a Jupyter (IPython) kernel running the same cells, unsandboxed\n");
      for (const [name, figure, ours] of pairs) {
        process.stdout.write(
          `  jupyter ${name.padEnd(34)} n=${String(figure.n).padStart(4)}  p50=${figure.p50_ms.toFixed(2).padStart(8)} ms  p99=${figure.p99_ms.toFixed(2).padStart(8)} ms  jupyter p50 / toolplane p50 = ${(figure.p50_ms / ours.p50).toFixed(1)}x\n`,
        );
      }
    } else {
      process.stdout.write(
        "baseline: Jupyter kernel not measured: python3-ipykernel / python3-jupyter-client not installed\n",
      );
    }
    process.stdout.write(`${JSON.stringify({ bench: "code-python", quick, rows, jupyter, memoryMb: memory })}\n`);
    for (const sessionId of [warmSession, imageSession, ...idleSessions]) await close(sessionId);
  } finally {
    await api.stop();
  }
  await sessionScale();
}

const scale = quick
  ? { burst: 8, baselineBurst: 1, open: 20, forkPool: "8" }
  : { burst: 256, baselineBurst: 16, open: 1000, forkPool: "256" };

/** Burst, memory and a thousand open sessions: zygote start, then the one-sandbox-per-session baseline. */
async function sessionScale(): Promise<void> {
  const forked = await sessionService({
    TOOLPLANE_CODE_FORK_POOL_SIZE: scale.forkPool,
    TOOLPLANE_CODE_MAX_SESSIONS: String(scale.open + 64),
    TOOLPLANE_METRICS_PORT: "0",
  });
  let zygote: { burst: Latencies; stages: BurstStages; memory: SessionMemory; open: OpenSessions };
  try {
    // One call first, so the burst does not also measure the client's connection set-up; then the pool fills in
    // the background and the burst meets a full one, as after an idle spell.
    await forked.close((await forked.create()).sessionId);
    await poolFilled(forked.service, Number(scale.forkPool));
    const servicePid = forked.service.child.pid as number;
    const before = {
      tree: treeCpuSeconds(servicePid),
      loop: processCpuSeconds(servicePid),
      client: process.cpuUsage(),
    };
    const logMark = forked.service.output.length;
    const first = await burst(forked, scale.burst);
    const cpu = {
      treeMs: (treeCpuSeconds(servicePid) - before.tree) * 1000,
      serviceLoopMs: (processCpuSeconds(servicePid) - before.loop) * 1000,
      clientMs: cpuMs(process.cpuUsage(before.client)),
    };
    // The service's "session created" lines of the burst: when each answer left the handler.
    await sleep(200);
    const stages = burstStages(first.calls, forked.service.output.slice(logMark), cpu);
    await inBatches(first.sessions, 32, (id) => forked.close(id));
    await poolFilled(forked.service, Number(scale.forkPool));
    const memory = sessionMemory(forked.service);
    const open = await openSessions(forked, scale.open);
    zygote = { burst: first.latency, stages, memory, open };
  } finally {
    await forked.stop();
  }

  const sandboxed = await sessionService({
    TOOLPLANE_CODE_PYTHON_START: "sandbox",
    TOOLPLANE_CODE_POOL_SIZE: quick ? "1" : "2",
  });
  let baseline: { burst: Latencies; memory: SessionMemory };
  try {
    await sandboxed.close((await sandboxed.create()).sessionId);
    await sleep(quick ? 0 : 3000);
    const first = await burst(sandboxed, scale.baselineBurst);
    const memory = sessionMemory(sandboxed.service);
    await inBatches(first.sessions, 8, (id) => sandboxed.close(id));
    baseline = { burst: first.latency, memory };
  } finally {
    await sandboxed.stop();
  }

  const line = (text: string) => process.stdout.write(`${text}\n`);
  const ms = (value: number) => `${value.toFixed(1)} ms`;
  line("session scale: zygote start (forked kernels) vs one bubblewrap sandbox per session, same run");
  line(
    `  CreateSession burst of ${zygote.burst.n} at once (zygote, warm pool of ${scale.forkPool}):  p50 ${ms(zygote.burst.p50)}  p99 ${ms(zygote.burst.p99)}  max ${ms(zygote.burst.max)}`,
  );
  line(
    `  CreateSession burst of ${baseline.burst.n} at once (baseline, pool of ${quick ? 1 : 2}):      p50 ${ms(baseline.burst.p50)}  p99 ${ms(baseline.burst.p99)}  max ${ms(baseline.burst.max)}`,
  );
  line(
    `    -> baseline p50 / zygote p50 = ${(baseline.burst.p50 / zygote.burst.p50).toFixed(1)}x (the baseline burst is ${baseline.burst.n}, not ${zygote.burst.n}: ~1 s of imports per sandbox on 2 cores)`,
  );
  const stages = zygote.stages;
  const spread = (figures: Spread) =>
    `first ${figures.first.toFixed(0)}, p50 ${figures.p50.toFixed(0)}, last ${figures.last.toFixed(0)} ms`;
  line(`    stages of the zygote burst, ms after the first call was sent:`);
  line(`      service handler started (CreateSession received):  ${spread(stages.received)}`);
  line(`      service answered (kernel taken from the pool and bound): ${spread(stages.answered)}`);
  line(`      client got the answer:                            ${spread(stages.delivered)}`);
  line(
    `    CPU of the burst: service event loop ${stages.cpu.serviceLoopMs.toFixed(0)} ms (${(stages.cpu.serviceLoopMs / zygote.burst.n).toFixed(2)} per create), its sandboxes (kernels binding, the zygote refilling the pool) ${(stages.cpu.treeMs - stages.cpu.serviceLoopMs).toFixed(0)} ms, this client's event loop ${stages.cpu.clientMs.toFixed(0)} ms`,
  );
  const allCoresMs = (stages.cpu.treeMs + stages.cpu.clientMs) / cpus().length;
  const chainMs = stages.cpu.serviceLoopMs + stages.cpu.clientMs;
  line(
    `    physical bound: every call of the burst passes through one client event loop and one service event loop (one thread each, one HTTP/2 connection), which take the whole burst in one batch: the last answer cannot come before their CPU, ~${chainMs.toFixed(0)} ms back to back (and not before ${allCoresMs.toFixed(0)} ms = all the burst's CPU on ${cpus().length} cores); p50 >= ~${(chainMs / 2).toFixed(0)} ms if answers left one by one -> p99 / bound = ${(zygote.burst.p99 / chainMs).toFixed(2)}`,
  );
  line(
    `  PSS per idle session: zygote ${zygote.memory.pssPerSessionMb.toFixed(1)} MB (of ${zygote.memory.kernels} kernels; the zygote itself ${zygote.memory.zygotePssMb.toFixed(1)} MB once), baseline ${baseline.memory.pssPerSessionMb.toFixed(1)} MB (of ${baseline.memory.kernels}) -> ${(baseline.memory.pssPerSessionMb / zygote.memory.pssPerSessionMb).toFixed(1)}x less`,
  );
  line(
    `  ${zygote.open.sessions} open sessions, each ran a cell: opened in ${(zygote.open.openMs / 1000).toFixed(1)} s, one cell each in ${(zygote.open.cellMs / 1000).toFixed(1)} s, PSS per session ${zygote.open.memory.pssPerSessionMb.toFixed(1)} MB, node MemAvailable fell ${zygote.open.memAvailableDropMb.toFixed(0)} MB (${(zygote.open.memAvailableDropMb / zygote.open.sessions).toFixed(1)} MB per session), errors ${zygote.open.errors}`,
  );
  process.stdout.write(`${JSON.stringify({ bench: "code-python-scale", quick, zygote, baseline })}\n`);
}

function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
}

interface Spread {
  first: number;
  p50: number;
  last: number;
}

interface BurstStages {
  received: Spread;
  answered: Spread;
  delivered: Spread;
  cpu: { treeMs: number; serviceLoopMs: number; clientMs: number };
}

/**
 * Where a burst's time went: when the service started each call's handler and answered it (its "session created"
 * log line, minus the call's Timing.total_ms for the start; the log has millisecond times), and when the client
 * got each answer.
 */
function burstStages(calls: BurstCall[], log: string[], cpu: BurstStages["cpu"]): BurstStages {
  const start = Math.min(...calls.map((call) => call.sentAt));
  const createdAt = new Map<string, number>();
  for (const entry of log) {
    if (!entry.includes('"session created"')) continue;
    const parsed = JSON.parse(entry) as { sessionId: string; time: string };
    createdAt.set(parsed.sessionId, Date.parse(parsed.time));
  }
  const received: number[] = [];
  const answered: number[] = [];
  for (const call of calls) {
    const at = createdAt.get(call.sessionId);
    if (at === undefined) continue;
    answered.push(at - start);
    received.push(at - call.serverMs - start);
  }
  const spreadOf = (values: number[]): Spread => {
    const sorted = [...values].sort((a, b) => a - b);
    return {
      first: sorted[0] ?? Number.NaN,
      p50: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN,
      last: sorted.at(-1) ?? Number.NaN,
    };
  };
  return {
    received: spreadOf(received),
    answered: spreadOf(answered),
    delivered: spreadOf(calls.map((call) => call.answeredAt - start)),
    cpu,
  };
}

interface OpenSessions {
  sessions: number;
  openMs: number;
  cellMs: number;
  memory: SessionMemory;
  memAvailableDropMb: number;
  errors: number;
}

/** Waits (at most 3 minutes) until the warm pool holds `size` idle kernels, read from the service's /metrics. */
async function poolFilled(service: SpawnedService, size: number): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const idle = metricValue(await scrapeMetrics(service), 'toolplane_pool_size{pool="python",state="idle"}') ?? 0;
    if (idle >= size) return;
    await sleep(500);
  }
  process.stdout.write(`note: the warm pool did not reach ${size} idle kernels within 3 minutes\n`);
}

/** Opens `n` sessions (32 calls in flight), runs one small cell in each, measures, closes them all. */
async function openSessions(api: Awaited<ReturnType<typeof sessionService>>, n: number): Promise<OpenSessions> {
  const before = memAvailableMb();
  const ids: string[] = [];
  let errors = 0;
  const opened = performance.now();
  await inBatches(
    Array.from({ length: n }, (_, index) => index),
    32,
    async () => {
      try {
        ids.push((await api.create()).sessionId);
      } catch {
        errors += 1;
      }
    },
  );
  const openMs = performance.now() - opened;
  const ran = performance.now();
  await inBatches(ids, 32, async (id) => {
    try {
      await api.execute(id, "import numpy as np\nstate = np.arange(10).sum()\nprint(state)");
    } catch {
      errors += 1;
    }
  });
  const cellMs = performance.now() - ran;
  const memory = sessionMemory(api.service);
  const memAvailableDropMb = before - memAvailableMb();
  await inBatches(ids, 32, (id) => api.close(id));
  return { sessions: ids.length, openMs, cellMs, memory, memAvailableDropMb, errors };
}

interface JupyterFigure {
  p50_ms: number;
  p99_ms: number;
  n: number;
}

/** The same cells in a Jupyter kernel (test/bench/support/jupyter_baseline.py), or undefined without Jupyter. */
function jupyterBaseline(
  quick: boolean,
): Record<"new_kernel_with_imports_print" | "warm_print" | "warm_numpy_pil_crop", JupyterFigure> | undefined {
  const probe = spawnSync(PYTHON, ["-c", "import jupyter_client, ipykernel"], { encoding: "utf8" });
  if (probe.status !== 0) return undefined;
  const script = new URL("../../../../test/bench/support/jupyter_baseline.py", import.meta.url);
  const result = spawnSync(PYTHON, [script.pathname, quick ? "5" : "200", quick ? "1" : "3"], {
    encoding: "utf8",
    timeout: 120_000,
  });
  if (result.status !== 0) throw new Error(`the Jupyter baseline failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split("\n").pop() ?? "{}");
}

main().catch((error: unknown) => {
  process.stderr.write(`code-python bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
