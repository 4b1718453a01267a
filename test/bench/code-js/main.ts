/**
 * JavaScript code-service latency: a new session + `1+1`, and a warm `1+1` in
 * an existing session, measured at the backend in-process (isolates in this
 * process, and in a sandbox host process) and over gRPC against the real
 * service. Baseline, in the same run: a fresh `node -e` process per snippet,
 * which is what a stateless per-request sandbox costs.
 *
 *   node dist/test/bench/code-js/main.js [--quick]
 */
import { spawn } from "node:child_process";
import type { LanguageBackend, ResolvedLimits } from "../../../services/code/src/backend.js";
import {
  createJavaScriptBackend,
  type JavaScriptBackendOptions,
} from "../../../services/code/src/javascript/backend.js";
import { benchOverGrpc } from "./grpc.js";
import { type Figures, measure } from "./stats.js";

const quick = process.argv.includes("--quick");
const ITERATIONS = quick ? 5 : 300;
const BASELINE_ITERATIONS = quick ? 3 : 30;
const LIMITS: ResolvedLimits = { timeoutMs: 5000, memoryMb: 128, maxOutputBytes: 65536, maxImages: 10 };
const OPTIONS: JavaScriptBackendOptions = {
  poolSize: 8,
  poolMemoryMb: LIMITS.memoryMb,
  imageServiceHint: "TOOLPLANE_IMAGE_SERVICE_ADDRESS",
  maxDisplayBytes: 16 * 1024 * 1024,
  maxDisplayPixels: 50_000_000,
  hardKillGraceMs: 1000,
};

function nodeDashE(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", "console.log(1+1)"], { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 && output.trim() === "2" ? resolve() : reject(new Error(`node -e exited ${code}: ${output}`)),
    );
  });
}

async function benchBackend(backend: LanguageBackend): Promise<{ newSession: Figures; warm: Figures }> {
  await backend.start();
  const signal = new AbortController().signal;
  const newSession = await measure(ITERATIONS, async () => {
    const session = await backend.createSession([], LIMITS);
    const outcome = await session.execute("1+1", { timeoutMs: LIMITS.timeoutMs, signal });
    if (outcome.result !== "2") throw new Error(`unexpected result ${outcome.result}`);
    // Closing is off the model's critical path (and disposes the isolate after replying): not timed.
    return () => session.close();
  });
  const session = await backend.createSession([], LIMITS);
  const warm = await measure(ITERATIONS, async () => {
    const outcome = await session.execute("1+1", { timeoutMs: LIMITS.timeoutMs, signal });
    if (outcome.result !== "2") throw new Error(`unexpected result ${outcome.result}`);
  });
  await session.close();
  await backend.stop();
  return { newSession, warm };
}

const format = (figures: Figures) => `p50 ${figures.p50.toFixed(3)} ms  p99 ${figures.p99.toFixed(3)} ms`;

async function main(): Promise<void> {
  console.log(`code-js bench (${quick ? "quick" : "full"}: ${ITERATIONS} iterations, baseline ${BASELINE_ITERATIONS})`);
  const baseline = await measure(BASELINE_ITERATIONS, nodeDashE);
  console.log(`baseline  node -e fresh process        ${format(baseline)}`);
  const rows: Array<[string, Figures]> = [];
  const inProcess = await benchBackend(createJavaScriptBackend({ ...OPTIONS, isolation: "in-process" }));
  rows.push(["backend in-process   new session + 1+1", inProcess.newSession]);
  rows.push(["backend in-process   warm execute 1+1 ", inProcess.warm]);
  const hosted = await benchBackend(createJavaScriptBackend({ ...OPTIONS, isolation: "process", hostProcesses: 1 }));
  rows.push(["backend host process new session + 1+1", hosted.newSession]);
  rows.push(["backend host process warm execute 1+1 ", hosted.warm]);
  const grpc = await benchOverGrpc(ITERATIONS);
  rows.push(["client over gRPC     new session + 1+1", grpc.newSession]);
  rows.push(["client over gRPC     warm execute 1+1 ", grpc.warm]);
  // The service's own timing.total_ms (what the targets are stated for), from the same calls.
  rows.push(["at the service       new session + 1+1", grpc.newSessionAtService]);
  rows.push(["at the service       warm execute 1+1 ", grpc.warmAtService]);
  for (const [name, figures] of rows) {
    console.log(
      `${name}  ${format(figures)}  (${(baseline.p50 / figures.p50).toFixed(0)}x faster than node -e at p50)`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
