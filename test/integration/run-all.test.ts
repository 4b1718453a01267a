import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, describe, it } from "node:test";

import { checkHealth } from "../support/health.js";
import { distRoot, waitFor } from "../support/processes.js";

/** `make run`'s process (run-all) on ephemeral ports, its output kept line by line. */
interface RunAll {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Set in every process of this run (inherited by services, sandbox hosts and sandboxes' launchers). */
  marker: string;
  exited: Promise<number | null>;
}

function startRunAll(env: Record<string, string> = {}): RunAll {
  const marker = `TOOLPLANE_TEST_RUN=${randomUUID()}`;
  const [markerName = "", markerValue = ""] = marker.split("=");
  const child = spawn(process.execPath, [join(distRoot, "services", "runtime", "src", "run-all.js")], {
    env: {
      ...process.env,
      TOOLPLANE_GATEWAY_PORT: "0",
      TOOLPLANE_IMAGE_PORT: "0",
      TOOLPLANE_CODE_PORT: "0",
      TOOLPLANE_SEARCH_PORT: "0",
      TOOLPLANE_CODE_POOL_SIZE: "1",
      TOOLPLANE_CODE_JS_HOST_PROCESSES: "2",
      TOOLPLANE_LOG_LEVEL: "info",
      [markerName]: markerValue,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, as a shell gives `make run`: Ctrl-C is a SIGINT to that whole group.
    detached: true,
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => stdout.push(line));
  createInterface({ input: child.stderr }).on("line", (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, stdout, stderr, marker, exited };
}

/** Pids of every live process carrying this run's marker in its environment. */
function processesOf(run: RunAll): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      if (readFileSync(`/proc/${entry}/environ`, "utf8").split("\0").includes(run.marker)) found.push(Number(entry));
    } catch {
      // Gone while we looked, or not ours to read.
    }
  }
  return found;
}

/** The JSON log lines carrying `msg` of one service, or of run-all about one service (`child`). */
function logLines(run: RunAll, service: string, msg: string): Array<Record<string, unknown>> {
  return run.stdout
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.msg === msg && (entry.child ?? entry.service) === service);
}

async function waitUntilGone(run: RunAll): Promise<void> {
  await waitFor(() => processesOf(run).length === 0, "every process of the run to end", 20_000);
}

describe("make run (run-all)", () => {
  const runs: RunAll[] = [];
  after(async () => {
    for (const run of runs) {
      run.child.kill("SIGKILL");
      for (const pid of processesOf(run)) process.kill(pid, "SIGKILL");
    }
  });

  it("stops everything when a service cannot start, naming the first cause in one line", async () => {
    const run = startRunAll({ TOOLPLANE_CODE_BWRAP_PATH: "/nonexistent/bwrap" });
    runs.push(run);
    assert.equal(await run.exited, 1);
    const last = run.stderr.at(-1) ?? "";
    assert.match(last, /^toolplane: failed to start: the code service did not start \(code 1\): .*/);
    assert.match(last, /spawn \/nonexistent\/bwrap ENOENT/);
    const all = [...run.stdout, ...run.stderr].join("\n");
    assert.doesNotMatch(all, /ERR_IPC_CHANNEL_CLOSED|Unhandled|^\s+at /m);
    // The image service had started: it was stopped, not left behind.
    assert.equal(logLines(run, "image", "stopped").length, 1, all);
    await waitUntilGone(run);
  });

  it("restarts a service killed with SIGKILL on its address while the others keep answering", async () => {
    const run = startRunAll();
    runs.push(run);
    await waitFor(() => run.stderr.some((line) => line.startsWith("toolplane is up")), "toolplane is up", 60_000);
    const address = (service: string) => String(logLines(run, service, "grpc server listening").at(-1)?.address);
    const searchPid = Number(logLines(run, "search", "service process started")[0]?.pid);
    const searchAddress = address("search");

    process.kill(searchPid, "SIGKILL");
    await waitFor(() => logLines(run, "search", "service died; restarting it").length > 0, "run-all to log the death");
    assert.equal(await checkHealth(address("gateway"), ""), "SERVING");
    assert.equal(await checkHealth(address("image"), "toolplane.image.v1.ImageService"), "SERVING");
    assert.equal(await checkHealth(address("code"), "toolplane.code.v1.CodeService"), "SERVING");

    await waitFor(() => logLines(run, "search", "service restarted").length > 0, "the search service to come back");
    assert.equal(address("search"), searchAddress);
    assert.equal(await checkHealth(searchAddress, "toolplane.search.v1.SearchService"), "SERVING");
    const restartedPid = Number(logLines(run, "search", "service process started").at(-1)?.pid);
    assert.notEqual(restartedPid, searchPid);

    // Ctrl-C: the terminal signals the whole foreground group; every service drains once and exits 0.
    process.kill(-(run.child.pid ?? 0), "SIGINT");
    assert.equal(await run.exited, 0);
    await waitUntilGone(run);
    assert.deepEqual(logLines(run, "run-all", "second signal, exiting now"), []);
    for (const service of ["gateway", "image", "code", "search"]) {
      assert.equal(logLines(run, service, "second signal, exiting now").length, 0, service);
      assert.ok(logLines(run, service, "stopped").length > 0, `${service} stopped after draining`);
    }
  });
});
