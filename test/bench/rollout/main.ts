import { cpus } from "node:os";
import sharp from "sharp";
import { ErrorClass } from "../../../generated/toolplane/common/v1/common.js";
import {
  ImageDelivery,
  ModelFormat,
  StepOutcome,
  type StepResponse,
  ToolGatewayClient,
} from "../../../generated/toolplane/gateway/v1/gateway.js";
import { createClient, invoke, ToolplaneError } from "../../../services/runtime/src/index.js";
import { treeCpuSeconds, treeRssKb } from "../../support/proc.js";
import { type SpawnedNats, type SpawnedService, spawnNats, spawnService } from "../../support/processes.js";

/**
 * Rollout load generator: N simulated DeepEyesV2 trajectories run concurrently
 * through the gateway, each doing a realistic mix: a crop in code, a second
 * cell that reuses the state, a web search, an answer. Prints trajectories/s,
 * per-tool p50/p99, errors by class and the peak memory of each service
 * (including the code service's sandboxes).
 *
 * Baseline, same run, same services: one trajectory at a time (--alone=N of
 * them in a row). The target is concurrency that pays: N at once reach at least
 * 3x the trajectories/s of one alone, with code calls p99 <= 1 s, no
 * INFRASTRUCTURE error and no in-band retry.
 *
 * `--live-kernels=N` then runs the same rollout on a code service that keeps at most N interpreters live
 * (idle sessions hibernate to their checkpoints) and prints its trajectories/s against the all-live run above.
 *
 * `--replicas=N` (N >= 2) then runs the same rollout again on N gateways sharing sessions through a real
 * nats-server and N code services, every trajectory alternating gateways call by call, and prints its
 * trajectories/s against the single-replica run above and the added cost per call of the shared state (the
 * answer step, which only reads and writes the session record, one at a time on both set-ups).
 */
const quick = process.argv.includes("--quick");
const trajectoriesArg = process.argv.find((arg) => arg.startsWith("--trajectories="));
const TRAJECTORIES = trajectoriesArg ? Number(trajectoriesArg.split("=")[1]) : quick ? 4 : 256;
const aloneArg = process.argv.find((arg) => arg.startsWith("--alone="));
const ALONE = aloneArg ? Number(aloneArg.split("=")[1]) : quick ? 1 : 8;
const liveArg = process.argv.find((arg) => arg.startsWith("--live-kernels="));
/** `--live-kernels=N`: the rollout again on a code service that keeps at most N interpreters live (issue 23). */
const LIVE_KERNELS = liveArg ? Number(liveArg.split("=")[1]) : 0;
const openArg = process.argv.find((arg) => arg.startsWith("--open="));
/**
 * `--open=N`: trajectories at once in the hibernation run (default: as many as the all-live run). More than the
 * all-live run can hold in this box's memory when every interpreter stays live.
 */
const OPEN = openArg ? Number(openArg.split("=")[1]) : TRAJECTORIES;
/** The single-replica run keeps every session's interpreter live, however many trajectories there are. */
const ALL_LIVE = {
  TOOLPLANE_CODE_MAX_SESSIONS: String(Math.max(1024, TRAJECTORIES + 64, OPEN + 64)),
  TOOLPLANE_CODE_MAX_LIVE_KERNELS: String(Math.max(256, TRAJECTORIES + 64)),
};
const replicasArg = process.argv.find((arg) => arg.startsWith("--replicas="));
// `make bench` compares one replica with two; the quick run (in `make test`) keeps to one.
const REPLICAS = replicasArg ? Number(replicasArg.split("=")[1]) : quick ? 1 : 2;

const TURNS: { tool: string; text: string }[] = [
  {
    tool: "code",
    text: [
      "<think>The sign is small; crop the top-left region and look closer.</think>",
      "<code>",
      "```python",
      "import matplotlib.pyplot as plt",
      "crop = image_1.crop((0, 0, 640, 360))",
      "plt.imshow(crop)",
      "plt.axis('off')",
      "plt.show()",
      "```",
      "</code>",
    ].join("\n"),
  },
  {
    tool: "code",
    text: [
      "<think>Measure the crop's mean colour.</think>",
      "<code>",
      "```python",
      "import numpy as np",
      "pixels = np.asarray(crop)",
      "print(crop.size, pixels.mean(axis=(0, 1)).round(1))",
      "```",
      "</code>",
    ].join("\n"),
  },
  {
    tool: "search",
    text: '<think>Look the landmark up.</think>\n<tool_call>\n{"name": "search", "arguments": {"query": "image processing histogram equalization"}}\n</tool_call>',
  },
  { tool: "answer", text: "<think>Enough evidence.</think>\n<answer>purple</answer>" },
];

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.round(fraction * (sorted.length - 1)))] ?? Number.NaN;
}

const services: Record<string, SpawnedService> = {};
for (const name of ["image", "code", "search"])
  services[name] = await spawnService(name, name === "code" ? ALL_LIVE : {});
services.gateway = await spawnService("gateway", {
  TOOLPLANE_IMAGE_ADDR: services.image?.address ?? "",
  TOOLPLANE_CODE_ADDR: services.code?.address ?? "",
  TOOLPLANE_SEARCH_ADDR: services.search?.address ?? "",
});

const peakRssKb: Record<string, number> = {};
const sampleMemory = () => {
  for (const [name, service] of Object.entries(services)) {
    const pid = service.child.pid;
    if (pid !== undefined) peakRssKb[name] = Math.max(peakRssKb[name] ?? 0, treeRssKb(pid));
  }
};
sampleMemory();
const sampler = setInterval(sampleMemory, 250);

let clients = [createClient(ToolGatewayClient, services.gateway.address)];
/** The gateway for a trajectory's n-th call: with several, calls alternate between them. */
const via = (n: number): ToolGatewayClient => clients[n % clients.length] as ToolGatewayClient;
const client = via(0);
const photo = await sharp({
  create: { width: 1280, height: 720, channels: 3, background: { r: 120, g: 30, b: 200 } },
})
  .jpeg({ quality: 85 })
  .toBuffer();
const stored = await invoke(client, client.putImage, { data: photo });
const photoSha = stored.image?.sha256 ?? "";

let latencies = new Map<string, number[]>();
let errorsByClass = { MODEL: 0, INFRASTRUCTURE: 0 };
let completed = 0;
let overloadedRetries = 0;

let errorSamples: string[] = [];
let inBandRetries = 0;
/** What the retried in-band answers said (a few distinct ones). */
let retrySamples: string[] = [];
/** Code calls whose session came back from its checkpoint first (hibernated, or its interpreter lost). */
let restores = 0;

function resetCounters(): void {
  latencies = new Map();
  errorsByClass = { MODEL: 0, INFRASTRUCTURE: 0 };
  completed = 0;
  overloadedRetries = 0;
  errorSamples = [];
  inBandRetries = 0;
  retrySamples = [];
  restores = 0;
}

async function step(sessionId: string, text: string, turn: number): Promise<StepResponse> {
  const client = via(turn);
  for (;;) {
    try {
      const response = await invoke(client, client.step, {
        sessionId,
        format: ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
        text,
        imageDelivery: ImageDelivery.IMAGE_DELIVERY_REFERENCE,
        timeoutMs: 60_000,
        step: turn,
      });
      // A retryable infrastructure answer (e.g. no free sandbox yet) says when to come back, as a trainer would.
      if (response.error?.retryable) {
        inBandRetries += 1;
        const retried = `retried: ${response.error.code} ${response.error.message}`.slice(0, 300);
        if (retrySamples.length < 5 && !retrySamples.includes(retried)) retrySamples.push(retried);
        await new Promise((resolve) => setTimeout(resolve, response.error?.retryAfterMs || 50));
        continue;
      }
      return response;
    } catch (error) {
      // Admission control said "come back later": that is the protocol working, not an error.
      if (error instanceof ToolplaneError && error.retryable && error.code === 8) {
        overloadedRetries += 1;
        await new Promise((resolve) => setTimeout(resolve, error.retryAfterMs ?? 50));
        continue;
      }
      throw error;
    }
  }
}

async function trajectory(index: number): Promise<void> {
  const client = via(index);
  const session = await invoke(client, client.createSession, {
    rolloutId: "bench-rollout",
    trajectoryId: `bench-${index}`,
    images: [{ sha256: photoSha, mimeType: "", width: 0, height: 0 }],
    idleTtlSeconds: 300,
  });
  try {
    for (const [turn, { tool, text }] of TURNS.entries()) {
      const started = performance.now();
      let response: StepResponse;
      try {
        response = await step(session.sessionId, text, turn + 1);
      } catch (error) {
        errorsByClass[error instanceof ToolplaneError ? error.errorClass : "INFRASTRUCTURE"] += 1;
        return;
      }
      if (response.results.some((result) => result.outputJson.includes('"restored"'))) restores += 1;
      const list = latencies.get(tool) ?? [];
      list.push(performance.now() - started);
      latencies.set(tool, list);
      if (response.error) {
        errorsByClass[response.error.errorClass === ErrorClass.ERROR_CLASS_MODEL ? "MODEL" : "INFRASTRUCTURE"] += 1;
        if (errorSamples.length < 5) errorSamples.push(`${tool}: ${response.error.code} ${response.error.message}`);
      }
      if (tool === "answer" && response.outcome !== StepOutcome.STEP_OUTCOME_ANSWER) errorsByClass.MODEL += 1;
    }
    completed += 1;
  } finally {
    await invoke(client, client.closeSession, { sessionId: session.sessionId }).catch(() => undefined);
  }
}

function summary(count: number, seconds: number) {
  return {
    trajectories: count,
    completed,
    seconds: Number(seconds.toFixed(2)),
    trajectories_per_second: Number((completed / seconds).toFixed(2)),
    per_tool_ms: Object.fromEntries(
      [...latencies.entries()].map(([tool, values]) => {
        const sorted = [...values].sort((a, b) => a - b);
        return [
          tool,
          {
            n: sorted.length,
            p50: Number(percentile(sorted, 0.5).toFixed(2)),
            p99: Number(percentile(sorted, 0.99).toFixed(2)),
          },
        ];
      }),
    ),
    errors_by_class: errorsByClass,
    error_samples: errorSamples,
    overloaded_retries: overloadedRetries,
    in_band_retries: inBandRetries,
    retry_samples: retrySamples,
    restores,
  };
}

// Baseline: one trajectory at a time.
const aloneStarted = performance.now();
for (let index = 0; index < ALONE; index++) await trajectory(TRAJECTORIES + index);
const alone = summary(ALONE, (performance.now() - aloneStarted) / 1000);
const aloneOk = alone.completed === ALONE && alone.errors_by_class.MODEL + alone.errors_by_class.INFRASTRUCTURE === 0;

resetCounters();
const cpuOf = () =>
  Object.fromEntries(Object.entries(services).map(([name, service]) => [name, treeCpuSeconds(service.child.pid ?? 0)]));
const cpuBefore = cpuOf();
const started = performance.now();
await Promise.all(Array.from({ length: TRAJECTORIES }, (_, index) => trajectory(index)));
const concurrent = summary(TRAJECTORIES, (performance.now() - started) / 1000);
const cpuAfter = cpuOf();
// CPU per trajectory in each service (sandboxes included): with every core busy, the fastest possible run.
const cpuPerTrajectoryMs = Object.fromEntries(
  Object.keys(services).map((name) => [
    name,
    Number(((((cpuAfter[name] ?? 0) - (cpuBefore[name] ?? 0)) * 1000) / TRAJECTORIES).toFixed(1)),
  ]),
);
const cpuMs = Object.values(cpuPerTrajectoryMs).reduce((sum, value) => sum + value, 0);
const boundPerSecond = (cpus().length * 1000) / cpuMs;
clearInterval(sampler);
sampleMemory();

const report = {
  ...concurrent,
  alone,
  ratio_to_alone: Number((concurrent.trajectories_per_second / alone.trajectories_per_second).toFixed(2)),
  cpu_ms_per_trajectory: cpuPerTrajectoryMs,
  physical_bound_trajectories_per_second: Number(boundPerSecond.toFixed(2)),
  peak_rss_mb: Object.fromEntries(
    Object.entries(peakRssKb).map(([name, kb]) => [name, Number((kb / 1024).toFixed(1))]),
  ),
};
const codeP99 = concurrent.per_tool_ms.code?.p99 ?? Number.NaN;
process.stdout.write(
  `rollout: ${TRAJECTORIES} DeepEyesV2 trajectories (code crop, code with state, search, answer) through the gateway\n`,
);
process.stdout.write(
  `${TRAJECTORIES} at once: ${concurrent.trajectories_per_second} trajectories/s; one at a time (baseline, ${ALONE} in a row): ${alone.trajectories_per_second}/s -> ${report.ratio_to_alone}x (target >= 3x); code p99 ${codeP99} ms (target <= 1000); INFRASTRUCTURE ${concurrent.errors_by_class.INFRASTRUCTURE}, in-band retries ${concurrent.in_band_retries} (target 0, 0)\n`,
);
process.stdout.write(
  `physical bound: ${cpuMs.toFixed(0)} ms of CPU per trajectory across the services on ${cpus().length} cores -> at most ${boundPerSecond.toFixed(2)} trajectories/s (${(boundPerSecond / alone.trajectories_per_second).toFixed(2)}x one alone) even with every core busy and nothing else running\n`,
);
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
let ok = aloneOk && completed === TRAJECTORIES && errorsByClass.MODEL + errorsByClass.INFRASTRUCTURE === 0;

for (const each of clients) each.close();
for (const service of Object.values(services).reverse()) await service.stop();

if (LIVE_KERNELS > 0) {
  // Hibernation: the same rollout with at most LIVE_KERNELS interpreters live; idle sessions are checkpointed and
  // freed, and their next cell restores them. Against the all-live run above.
  const image = await spawnService("image");
  const search = await spawnService("search");
  const code = await spawnService("code", {
    TOOLPLANE_CODE_MAX_SESSIONS: ALL_LIVE.TOOLPLANE_CODE_MAX_SESSIONS,
    TOOLPLANE_CODE_MAX_LIVE_KERNELS: String(LIVE_KERNELS),
  });
  const gateway = await spawnService("gateway", {
    TOOLPLANE_IMAGE_ADDR: image.address,
    TOOLPLANE_CODE_ADDR: code.address,
    TOOLPLANE_SEARCH_ADDR: search.address,
  });
  clients = [createClient(ToolGatewayClient, gateway.address)];
  await invoke(via(0), via(0).putImage, { data: photo });
  resetCounters();
  const hibernatingStarted = performance.now();
  await Promise.all(Array.from({ length: OPEN }, (_, index) => trajectory(4 * TRAJECTORIES + index)));
  const hibernating = summary(OPEN, (performance.now() - hibernatingStarted) / 1000);
  process.stdout.write(
    `hibernation: ${OPEN} open trajectories on ${LIVE_KERNELS} live interpreters: ${hibernating.trajectories_per_second} trajectories/s vs ${concurrent.trajectories_per_second}/s all live (${TRAJECTORIES} at once) -> ${(hibernating.trajectories_per_second / concurrent.trajectories_per_second).toFixed(2)}x; ${hibernating.restores} code calls restored first; INFRASTRUCTURE ${hibernating.errors_by_class.INFRASTRUCTURE} (target 0); code p50/p99 ${hibernating.per_tool_ms.code?.p50}/${hibernating.per_tool_ms.code?.p99} ms vs ${concurrent.per_tool_ms.code?.p50}/${concurrent.per_tool_ms.code?.p99} ms\n`,
  );
  process.stdout.write(`${JSON.stringify({ live_kernels: LIVE_KERNELS, hibernating }, null, 2)}\n`);
  ok &&= completed === OPEN && errorsByClass.MODEL + errorsByClass.INFRASTRUCTURE === 0;
  for (const each of clients) each.close();
  for (const service of [gateway, code, search, image]) await service.stop();
}

if (REPLICAS >= 2) {
  // The same rollout on REPLICAS gateways (sessions in NATS) and REPLICAS code services.
  const nats: SpawnedNats = await spawnNats();
  const image = await spawnService("image");
  const search = await spawnService("search");
  const codes = await Promise.all(Array.from({ length: REPLICAS }, () => spawnService("code")));
  const gateways = await Promise.all(
    Array.from({ length: REPLICAS }, () =>
      spawnService("gateway", {
        TOOLPLANE_IMAGE_ADDR: image.address,
        TOOLPLANE_CODE_ADDR: codes.map((code) => code.address).join(","),
        TOOLPLANE_SEARCH_ADDR: search.address,
        TOOLPLANE_NATS_URL: nats.url,
        TOOLPLANE_GATEWAY_SHARED_SESSIONS: "true",
      }),
    ),
  );
  clients = gateways.map((gateway) => createClient(ToolGatewayClient, gateway.address));
  await invoke(via(0), via(0).putImage, { data: photo });
  resetCounters();
  const sharedAloneStarted = performance.now();
  for (let index = 0; index < ALONE; index++) await trajectory(2 * TRAJECTORIES + index);
  const sharedAlone = summary(ALONE, (performance.now() - sharedAloneStarted) / 1000);
  resetCounters();
  const sharedStarted = performance.now();
  await Promise.all(Array.from({ length: TRAJECTORIES }, (_, index) => trajectory(3 * TRAJECTORIES + index)));
  const shared = summary(TRAJECTORIES, (performance.now() - sharedStarted) / 1000);
  const answerCost =
    (sharedAlone.per_tool_ms.answer?.p50 ?? Number.NaN) - (alone.per_tool_ms.answer?.p50 ?? Number.NaN);
  process.stdout.write(
    `replicas: ${REPLICAS} gateways (sessions in NATS JetStream, calls alternating) + ${REPLICAS} code services: ${shared.trajectories_per_second} trajectories/s vs ${concurrent.trajectories_per_second}/s on one of each in this run -> ${(shared.trajectories_per_second / concurrent.trajectories_per_second).toFixed(2)}x; bound: ${cpus().length} cores serve both set-ups, so more replicas add no CPU here (at most ${boundPerSecond.toFixed(2)} trajectories/s either way)\n`,
  );
  process.stdout.write(
    `shared state per call: answer step p50 ${sharedAlone.per_tool_ms.answer?.p50} ms with NATS vs ${alone.per_tool_ms.answer?.p50} ms in memory -> +${answerCost.toFixed(2)} ms (one KV read and one compare-and-set write)\n`,
  );
  process.stdout.write(`${JSON.stringify({ replicas: REPLICAS, shared, shared_alone: sharedAlone }, null, 2)}\n`);
  ok &&= completed === TRAJECTORIES && errorsByClass.MODEL + errorsByClass.INFRASTRUCTURE === 0;
  for (const each of clients) each.close();
  for (const service of [...gateways, ...codes, search, image]) await service.stop();
  await nats.stop();
}
process.exit(ok ? 0 : 1);
