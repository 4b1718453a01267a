import { statSync } from "node:fs";
import { Presets, SingleBar } from "cli-progress";
import { errorMessage } from "../../../runtime/src/error-message.js";
import { buildIndex } from "../index-build.js";

/**
 * `node dist/services/search/src/cli/build-index.js <corpus.jsonl[.gz]> <index.sqlite>` builds the disk index
 * the search service opens with TOOLPLANE_SEARCH_INDEX. Run it again on the same two paths after an
 * interruption and it resumes where the last committed batch ended. A progress bar goes to stderr (a line
 * every 10 s when stderr is not a terminal, e.g. in a Kubernetes Job); the summary line to stdout.
 * Exit 0 when the index is complete, 1 on a bad corpus or file, 2 on bad usage.
 */
const USAGE = "usage: build-index <corpus.jsonl[.gz]> <index.sqlite>";

async function main(): Promise<number> {
  const [source, index, ...extra] = process.argv.slice(2);
  if (source === undefined || index === undefined || extra.length > 0 || source.startsWith("-")) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const started = performance.now();
  const bar = new SingleBar(
    {
      format: "{phase} [{bar}] {percentage}% | {documents} documents | {rate} docs/s | ETA {eta_formatted}",
      noTTYOutput: true,
      notTTYSchedule: 10_000,
      etaBuffer: 50,
    },
    Presets.shades_classic,
  );
  let barStarted = false;
  let resumedDocuments: number | undefined;
  try {
    const summary = await buildIndex({
      source,
      index,
      onProgress: (progress) => {
        resumedDocuments ??= progress.documents;
        const seconds = (performance.now() - started) / 1000;
        const payload = {
          phase: progress.phase,
          documents: progress.documents,
          rate: Math.round((progress.documents - resumedDocuments) / Math.max(seconds, 0.001)),
        };
        if (!barStarted) {
          bar.start(progress.totalFileBytes, progress.fileBytes, payload);
          barStarted = true;
        } else bar.update(progress.fileBytes, payload);
      },
    });
    if (barStarted) bar.stop();
    const seconds = (performance.now() - started) / 1000;
    const megabytes = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
    process.stdout.write(
      summary.alreadyComplete
        ? `${index} is already complete: ${summary.documents} documents\n`
        : `indexed ${summary.documents} documents${summary.resumedFrom > 0 ? ` (resumed after ${summary.resumedFrom})` : ""} into ${index}: ${megabytes(statSync(index).size)} MiB in ${seconds.toFixed(1)} s; peak RSS ${megabytes(process.resourceUsage().maxRSS * 1024)} MiB\n`,
    );
    return 0;
  } catch (error) {
    if (barStarted) bar.stop();
    process.stderr.write(`build-index: ${errorMessage(error)}\n`);
    return 1;
  }
}

process.exitCode = await main();
