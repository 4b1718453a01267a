import { errorMessage } from "../errors.js";
import { eventsConfigShape, readTrajectoryFromStream } from "../events.js";
import { ConfigError, loadConfig } from "../index.js";
import { readTrajectoryFromDirectory, recorderConfigShape } from "../recorder.js";

/**
 * `node dist/services/runtime/src/cli/export-trajectory.js <trajectory-id>`
 * writes one trajectory's tool-call events as JSONL on stdout (a started and a
 * finished line per call, in emission order). Source: the TOOLPLANE_CALLS
 * stream when TOOLPLANE_NATS_URL is set, else the journal under
 * TOOLPLANE_RECORD_DIR. Exit 0 with events, 1 when none were found, 2 on bad
 * usage or config.
 */
const USAGE = "usage: export-trajectory <trajectory-id>   (env: TOOLPLANE_NATS_URL or TOOLPLANE_RECORD_DIR)";

async function main(): Promise<number> {
  const [trajectoryId, ...extra] = process.argv.slice(2);
  if (trajectoryId === undefined || trajectoryId === "" || extra.length > 0 || trajectoryId.startsWith("-")) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  let config: { TOOLPLANE_NATS_URL?: string; TOOLPLANE_RECORD_DIR: string };
  try {
    config = loadConfig({
      TOOLPLANE_NATS_URL: eventsConfigShape.TOOLPLANE_NATS_URL,
      TOOLPLANE_RECORD_DIR: recorderConfigShape.TOOLPLANE_RECORD_DIR,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  const source = config.TOOLPLANE_NATS_URL ?? config.TOOLPLANE_RECORD_DIR;
  const events =
    config.TOOLPLANE_NATS_URL === undefined
      ? await readTrajectoryFromDirectory(config.TOOLPLANE_RECORD_DIR, trajectoryId)
      : await readTrajectoryFromStream(config.TOOLPLANE_NATS_URL, trajectoryId);
  if (events.length === 0) {
    process.stderr.write(`no calls found for trajectory ${JSON.stringify(trajectoryId)} in ${source}\n`);
    return 1;
  }
  process.stdout.write(events.map((event) => `${JSON.stringify(event)}\n`).join(""));
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`export-trajectory: ${errorMessage(error)}\n`);
    process.exitCode = 1;
  },
);
