import { spawn } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SERVICE_NODE_FLAGS } from "../../services/runtime/src/node-flags.js";

/**
 * `make bench`: runs every benchmark under test/bench/<name>/main.ts one after
 * another (never in parallel: they would measure each other) and writes
 * docs/BENCHMARKS.md with each one's printed figures. `--quick` runs each in its
 * quick mode to prove it works and writes nothing.
 */
const quick = process.argv.includes("--quick");
const only = process.argv.slice(2).filter((arg) => !arg.startsWith("--"));
const benchRoot = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(benchRoot, "..", "..", "..");

interface BenchRun {
  name: string;
  exitCode: number | null;
  seconds: number;
  output: string;
}

function runBench(name: string): Promise<BenchRun> {
  const started = performance.now();
  return new Promise((resolve) => {
    // A benchmark's own process is a client standing in for the gateway, so it runs with the services' flags: with
    // sharp loaded and large messages, V8's defaults made the load generator steal cores from the service it measures.
    const args = [...SERVICE_NODE_FLAGS, join(benchRoot, name, "main.js"), ...(quick ? ["--quick"] : [])];
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, TOOLPLANE_LOG_LEVEL: process.env.TOOLPLANE_LOG_LEVEL ?? "warn" },
    });
    let output = "";
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.once("exit", (exitCode) =>
      resolve({ name, exitCode, seconds: (performance.now() - started) / 1000, output: output.trimEnd() }),
    );
  });
}

const names = readdirSync(benchRoot, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(benchRoot, entry.name, "main.js")))
  .map((entry) => entry.name)
  .filter((name) => only.length === 0 || only.includes(name))
  .sort();

const runs: BenchRun[] = [];
for (const name of names) {
  process.stdout.write(`\n=== bench ${name}${quick ? " (quick)" : ""} ===\n`);
  runs.push(await runBench(name));
}

const failed = runs.filter((run) => run.exitCode !== 0);
for (const run of runs)
  process.stdout.write(`bench ${run.name}: exit ${run.exitCode} in ${run.seconds.toFixed(1)} s\n`);
if (!quick) {
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const lines = [
    "# Benchmarks",
    "",
    `Written by \`make bench\` on ${new Date().toISOString()}.`,
    `Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}.`,
    "Every figure below was measured in the same run as its baseline; ratios compare the two.",
    "",
  ];
  for (const run of runs) {
    lines.push(
      `## ${run.name}`,
      "",
      `Exit ${run.exitCode}, ${run.seconds.toFixed(1)} s.`,
      "",
      "```",
      run.output,
      "```",
      "",
    );
  }
  writeFileSync(join(repoRoot, "docs", "BENCHMARKS.md"), lines.join("\n"));
  process.stdout.write("wrote docs/BENCHMARKS.md\n");
}
process.stdout.write(`benchmarks: ${runs.length - failed.length} ok, ${failed.length} failing\n`);
process.exit(failed.length === 0 ? 0 : 1);
