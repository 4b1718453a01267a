/**
 * Checkpoint, restore and hibernation of Python sessions (issue 23), on real zygote-forked sandboxes:
 *  - the cell's latency with checkpoints off, on with the model's think time between cells (the RL case: the
 *    checkpoint runs while the model generates), and on back to back (the next cell waits for the checkpoint:
 *    the difference is the checkpoint's cost per cell);
 *  - restore latency after the interpreter is killed, for a namespace holding a 1280x720 image and three 1 MB
 *    arrays (goal p50 <= 30 ms);
 *  - many open sessions against few live interpreters (hibernation) against all of them live: trajectories/s
 *    and errors.
 * `--quick`: tiny counts, proves the script works; no figure is judged.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecutionOutcome } from "../../../services/code/src/backend.js";
import { DiskCheckpointStore } from "../../../services/code/src/checkpoint-store.js";
import { PythonReplica, pythonBackendOptions } from "../../support/python-backend.js";

const quick = process.argv.includes("--quick");
const MIB = 1024 * 1024;
const CELLS = quick ? 5 : 60;
const RESTORES = quick ? 3 : 30;
const OPEN = quick ? 8 : 512;
const LIVE = quick ? 2 : 64;
const ROUNDS = 3;
const THINK_MS = 200;

/** A replica as the service would run it: its pool sizes and limits; checkpoints on when `dir` is given. */
class Service extends PythonReplica {
  constructor(dir: string | undefined, maxLiveKernels = 4096) {
    super(
      pythonBackendOptions({
        start: "auto",
        preload: ["numpy", "PIL.Image", "PIL.ImageOps", "cv2", "matplotlib.pyplot", "scipy"],
        poolSize: 2,
        warmupConcurrency: 2,
        forkPoolSize: 16,
        forkConcurrency: 2,
        tmpBytes: 64 * MIB,
        maxFrameBytes: 256 * MIB,
        maxFileBytes: 16 * MIB,
        maxOpenFiles: 256,
        killGraceMs: 2000,
        ...(dir
          ? {
              checkpoints: {
                store: new DiskCheckpointStore(dir, 8192 * MIB),
                maxBytes: 64 * MIB,
                timeoutMs: 10_000,
                maxLiveKernels,
              },
            }
          : {}),
      }),
      4096,
    );
  }

  /** A cell that must succeed: the benchmark measures working cells only. */
  override async run(sessionId: string, code: string): Promise<ExecutionOutcome> {
    const outcome = await super.run(sessionId, code);
    if (outcome.failure) throw new Error(`${code}: ${outcome.stderr}`);
    return outcome;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
const ms = (value: number) => `${value.toFixed(2)} ms`;

const STATE = [
  "import numpy as np",
  "from PIL import Image",
  "frame = Image.fromarray((np.random.rand(720, 1280, 3) * 255).astype('uint8'))",
  "a1, a2, a3 = (np.random.rand(131072) for _ in range(3))",
  "notes = {'step': 0}",
].join("\n");
const CELL = "notes['step'] += 1\nnotes['step']";

async function cellLatency(service: Service, thinkMs: number): Promise<number[]> {
  const id = await service.create();
  await service.run(id, STATE);
  await service.backend.checkpointsSettled();
  const times: number[] = [];
  for (let i = 0; i < CELLS; i++) {
    const started = performance.now();
    await service.run(id, CELL);
    times.push(performance.now() - started);
    if (thinkMs > 0) await sleep(thinkMs);
  }
  return times;
}

async function restoreLatency(service: Service): Promise<{ restore: number[]; cell: number[] }> {
  const id = await service.create();
  await service.run(id, STATE);
  const restore: number[] = [];
  const cell: number[] = [];
  for (let i = 0; i < RESTORES; i++) {
    await service.backend.checkpointsSettled();
    for (const pid of service.backend.sessionPids()) process.kill(pid, "SIGKILL");
    await sleep(50);
    const started = performance.now();
    const outcome = await service.run(id, CELL);
    cell.push(performance.now() - started);
    if (outcome.restored?.complete !== true) throw new Error(`not restored: ${outcome.stderr}`);
    restore.push(outcome.restored.restoreMs);
  }
  return { restore, cell };
}

async function rollout(service: Service): Promise<{ perSecond: number; errors: number; restored: number }> {
  const ids = await Promise.all(Array.from({ length: OPEN }, () => service.create()));
  let errors = 0;
  let restored = 0;
  const started = performance.now();
  for (let round = 0; round < ROUNDS; round++) {
    // Every trajectory takes one turn per round, a few at a time, as a rollout's generation frees them.
    const queue = [...ids];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
          try {
            const outcome = await service.run(
              id,
              round === 0 ? "import numpy as np\nacc = [np.ones(1000)]" : "acc.append(acc[-1] * 2)\nlen(acc)",
            );
            if (outcome.restored) restored += 1;
            if (round > 0 && outcome.result !== String(round + 1)) errors += 1;
          } catch {
            errors += 1;
          }
        }
      }),
    );
  }
  return { perSecond: OPEN / ((performance.now() - started) / 1000), errors, restored };
}

const dir = mkdtempSync(join(tmpdir(), "toolplane-bench-checkpoints-"));
process.stdout.write(
  `checkpoint benchmark${quick ? " (--quick: counts too small to judge)" : ""}; ${cpus().length} cores, load average ${loadavg()[0]?.toFixed(1)}\n`,
);
try {
  const off = new Service(undefined);
  await off.manager.start();
  const offTimes = await cellLatency(off, THINK_MS);
  const offAllLive = await rollout(off);
  await off.manager.stop();

  const on = new Service(dir);
  await on.manager.start();
  const thinking = await cellLatency(on, THINK_MS);
  const backToBack = await cellLatency(on, 0);
  const { restore, cell } = await restoreLatency(on);
  await on.manager.stop();

  const hibernating = new Service(dir, LIVE);
  await hibernating.manager.start();
  const hibernated = await rollout(hibernating);
  await hibernating.manager.stop();

  const offP50 = percentile(offTimes, 50);
  const onP50 = percentile(thinking, 50);
  const pairP50 = percentile(backToBack, 50);
  process.stdout.write(
    [
      `namespace: a 1280x720 RGB image, three 1 MB float arrays, a dict; cell: one dict update; n=${CELLS} each`,
      `cell p50, checkpoints off                       ${ms(offP50)}  p99 ${ms(percentile(offTimes, 99))}`,
      `cell p50, checkpoints on, ${THINK_MS} ms think time     ${ms(onP50)}  p99 ${ms(percentile(thinking, 99))}  -> ${(onP50 / offP50).toFixed(2)}x off (the checkpoint is off the critical path when ~1.0x)`,
      `cell p50, checkpoints on, back to back          ${ms(pairP50)}  p99 ${ms(percentile(backToBack, 99))}  -> checkpoint cost per cell ~${ms(pairP50 - offP50)}`,
      `restore after kill -9, n=${RESTORES}                     p50 ${ms(percentile(restore, 50))}  p99 ${ms(percentile(restore, 99))} (goal p50 <= 30 ms: ${quick ? "not judged in --quick" : percentile(restore, 50) <= 30 ? "met" : "NOT met"}); whole restored cell p50 ${ms(percentile(cell, 50))}`,
      `rollout, ${OPEN} open sessions, all live:        ${offAllLive.perSecond.toFixed(1)} trajectories/s, errors ${offAllLive.errors}`,
      `rollout, ${OPEN} open sessions, ${LIVE} live kernels: ${hibernated.perSecond.toFixed(1)} trajectories/s (${(hibernated.perSecond / offAllLive.perSecond).toFixed(2)}x all-live), restores ${hibernated.restored}, errors ${hibernated.errors} (target 0)`,
      "",
    ].join("\n"),
  );
  if (hibernated.errors > 0 || offAllLive.errors > 0) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
