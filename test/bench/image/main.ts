/**
 * Image benchmark: the same four pipelines on the same 1920x1080 JPEG, run
 * through the image service over gRPC (spawned here, on loopback) and through
 * Python PIL in-process (pil_reference.py), in one run, with the ratios.
 *
 *   node dist/test/bench/image/main.js [--quick]
 *
 * Every iteration is a whole call: the operations and a JPEG quality 90
 * encode, measured from the client, so the service's figures include protobuf
 * and the socket. "c=1" sends one call at a time (latency); "c=2" keeps two in
 * flight (throughput on a 2-core box, one pipeline per core, as rollouts use
 * it). PIL is one Python process: c=1. Decoding is where the variants differ:
 *
 * - svc cold: a service with the decoded-image cache off
 *   (TOOLPLANE_IMAGE_DECODED_CACHE_MB=0): every call decodes, as before the
 *   cache; the first table compares it with PIL cold, as this benchmark always
 *   has.
 * - svc new: a service with the cache on (the defaults), every call on an
 *   image it has not seen (the same JPEG with unique bytes appended after its
 *   end marker). The default admits an image on its second sighting, so these
 *   calls read their bytes as without a cache, plus the sha256 of the input:
 *   what traffic that never repeats an image costs with the cache on.
 * - svc warm: the same service, the same image every call (a zoom tool called
 *   again and again in a trajectory, GRPO rollouts of one prompt): the pixels
 *   come from the cache.
 * - PIL cold decodes every call; PIL warm decodes once and keeps the image in
 *   memory (the fair baseline for svc warm).
 *
 * On a shared machine wall-clock figures move with other people's load, so
 * CPU time per call is printed too (the service process's user+system time
 * from /proc, PIL's process time): it compares the work itself.
 */
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import sharp from "sharp";
import {
  CoordinateUnit,
  ImageFormat,
  ImageServiceClient,
  type Operation,
  type ProcessRequest,
  type ProcessResponse,
} from "../../../generated/toolplane/image/v1/image.js";
import { ImageReferences } from "../../../services/gateway/src/image-references.js";
import { enlargeBicubic } from "../../../services/image/src/bicubic.js";
import { DEFAULT_LIMITS } from "../../../services/image/src/limits.js";
import type { Raster } from "../../../services/image/src/raster.js";
import { createClient, unboundedScope } from "../../../services/runtime/src/index.js";
import { metricValue, type SpawnedService, scrapeMetrics, spawnService } from "../../support/processes.js";

const quick = process.argv.includes("--quick");
const ITERATIONS = quick ? 4 : 120;
const WARMUP = quick ? 1 : 10;
/** The PIL script sits beside this file in the source tree; dist/ mirrors the tree under the repository root. */
const PIL_SCRIPT = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "..",
  "..",
  "test",
  "bench",
  "image",
  "pil_reference.py",
);

const pixels = (left: number, top: number, right: number, bottom: number) => ({
  left,
  top,
  right,
  bottom,
  unit: CoordinateUnit.COORDINATE_UNIT_PIXELS,
});

const PIPELINES: Record<string, Operation[]> = {
  "crop+zoom 2x": [
    {
      zoom: {
        box: pixels(800, 400, 1100, 600),
        scale: 2,
        targetWidth: 0,
        targetHeight: 0,
        minShortSide: 0,
        deepeyesRules: true,
      },
    },
  ],
  "rotate 33": [{ rotate: { angleDegrees: 33, background: "#000000" } }],
  "smart resize": [
    { resize: { width: 0, height: 0, fit: 0, scale: 0, smart: { factor: 28, minPixels: 0, maxPixels: 0 } } },
  ],
  annotate: [
    {
      annotate: {
        annotations: [pixels(100, 100, 600, 500), pixels(700, 300, 1200, 900), pixels(1300, 50, 1800, 400)].map(
          (box, index) => ({ box, label: `object ${index}`, color: "red", lineWidth: 4 }),
        ),
      },
    },
  ],
};

interface Figures {
  ops_per_s: number;
  p50_ms: number;
  p99_ms: number;
  cpu_ms_per_call: number;
  /** The benchmark client's own CPU per call (protobuf, HTTP/2), which shares the cores with the service. */
  client_cpu_ms_per_call?: number;
  n: number;
}

const CLOCK_TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/** User + system CPU time of a process so far, in ms (Linux /proc). */
function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  // After "pid (comm) ", utime and stime are the 12th and 13th fields.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

function percentile(sorted: number[], fraction: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

/** A photo-like 1920x1080 JPEG: smooth gradients plus mild grain (~ the size of a real q90 photo). */
async function benchmarkImage(): Promise<Buffer> {
  const width = 1920;
  const height = 1080;
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const offset = (y * width + x) * 3;
      const grain = ((x * 7919 + y * 104729) % 23) - 11;
      raw[offset] = Math.max(0, Math.min(255, ((x * 255) / width + grain) | 0));
      raw[offset + 1] = Math.max(0, Math.min(255, ((y * 255) / height + grain) | 0));
      raw[offset + 2] = Math.max(0, Math.min(255, (128 + 100 * Math.sin(x / 40) * Math.cos(y / 30) + grain) | 0));
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

function call(client: InstanceType<typeof ImageServiceClient>, request: ProcessRequest): Promise<ProcessResponse> {
  return new Promise((resolve, reject) => {
    client.process(request, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

/** Sends the call with the image's bytes. */
function bytesTo(client: InstanceType<typeof ImageServiceClient>): Send {
  return (request) => call(client, request);
}

/** Sends the call as the gateway does: its store knows each image's sha256, so the request carries both. */
function theGatewayWay(client: InstanceType<typeof ImageServiceClient>): Send {
  const references = new ImageReferences((request) => call(client, request), 2);
  return (request) => {
    const image = request.image as NonNullable<ProcessRequest["image"]>;
    const data = image.data as Buffer;
    return references.call({ ...request, image: { ...image, sha256: sha256Of(data) } }, unboundedScope());
  };
}

const hashes = new WeakMap<Buffer, string>();
/** The sha256 the gateway's store already knows for an image (computed once per buffer here). */
function sha256Of(data: Buffer): string {
  let known = hashes.get(data);
  if (known === undefined) {
    known = createHash("sha256").update(data).digest("hex");
    hashes.set(data, known);
  }
  return known;
}

/** The image for the next call: always the same one, or a new one every call. */
type ImageFor = () => Buffer;

/** How a call is sent: with the image's bytes, or as the gateway sends it (image-references.ts). */
type Send = (request: ProcessRequest) => Promise<ProcessResponse>;

async function measureService(
  transport: Send,
  imageFor: ImageFor,
  operations: Operation[],
  concurrency: number,
  pid: number,
): Promise<Figures> {
  const send = () => {
    const data = imageFor();
    return transport({
      image: { data, mimeType: "image/jpeg", width: 0, height: 0 },
      operations,
      output: { format: ImageFormat.IMAGE_FORMAT_JPEG, quality: 90, minShortSide: 0 },
    });
  };
  for (let i = 0; i < WARMUP; i++) await send();
  const latencies: number[] = [];
  const cpuStarted = cpuMsOf(pid);
  const clientStarted = process.cpuUsage();
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < ITERATIONS) {
      next += 1;
      const begin = performance.now();
      await send();
      latencies.push(performance.now() - begin);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  const cpu = cpuMsOf(pid) - cpuStarted;
  const clientCpu = process.cpuUsage(clientStarted);
  latencies.sort((a, b) => a - b);
  return {
    ops_per_s: latencies.length / elapsed,
    p50_ms: percentile(latencies, 0.5),
    p99_ms: percentile(latencies, 0.99),
    cpu_ms_per_call: cpu / latencies.length,
    client_cpu_ms_per_call: (clientCpu.user + clientCpu.system) / 1000 / latencies.length,
    n: latencies.length,
  };
}

interface PilFigures {
  cold: Record<string, Figures>;
  warm: Record<string, Figures>;
  /** crop+zoom's 300x200 -> 600x400 BICUBIC resize alone. */
  enlarge: Figures;
}

/**
 * CPU per call of crop+zoom's enlargement alone (300x200 -> 600x400 from decoded pixels, no encode), in this
 * process, one call at a time: the service's native resampler against libvips' cubic resize, which the service
 * used before (vips_affine), on the same pixels.
 */
async function measureEnlargers(image: Buffer): Promise<{ native: number; libvips: number }> {
  const { data, info } = await sharp(image).raw().toBuffer({ resolveWithObject: true });
  const raster: Raster = { kind: "raster", data, width: info.width, height: info.height, channels: info.channels };
  const region = { left: 800, top: 400, width: 300, height: 200 };
  const target = { width: 600, height: 400 };
  const context = { scope: unboundedScope(), limits: DEFAULT_LIMITS };
  const cpuPerCall = async (call: () => Promise<unknown>) => {
    for (let index = 0; index < WARMUP; index++) await call();
    const started = process.cpuUsage();
    for (let index = 0; index < ITERATIONS * 4; index++) await call();
    const used = process.cpuUsage(started);
    return (used.user + used.system) / 1000 / (ITERATIONS * 4);
  };
  sharp.concurrency(1);
  return {
    native: await cpuPerCall(() => enlargeBicubic(raster, region, target, context, "bench")),
    libvips: await cpuPerCall(() =>
      sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels as 3 } })
        .extract(region)
        .resize(target.width, target.height, { fit: "fill", kernel: "cubic" })
        .raw()
        .toBuffer(),
    ),
  };
}

async function measurePil(imagePath: string): Promise<PilFigures> {
  const { stdout } = await promisify(execFile)(
    "/usr/bin/python3",
    [PIL_SCRIPT, imagePath, String(ITERATIONS), String(WARMUP)],
    { maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout) as PilFigures;
}

async function cacheCounts(service: SpawnedService): Promise<{ hits: number; misses: number }> {
  const text = await scrapeMetrics(service);
  return {
    hits: metricValue(text, "toolplane_image_decoded_cache_hits_total") ?? Number.NaN,
    misses: metricValue(text, "toolplane_image_decoded_cache_misses_total") ?? Number.NaN,
  };
}

const format = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : "n/a");

interface PipelineResults {
  /** Cache off: every call decodes. */
  service_c1: Figures;
  service_c2: Figures;
  /** Cache on, a new image every call. */
  service_new_c1: Figures;
  service_new_c2: Figures;
  /** Cache on, the same image every call. */
  service_warm_c1: Figures;
  service_warm_c2: Figures;
  /** Cache on, the same image every call, sent as the gateway sends it: by sha256 once the service holds it. */
  service_ref_c1: Figures;
  service_ref_c2: Figures;
  pil: Figures;
  pil_warm: Figures;
}

/** The first table, as this benchmark has always printed it: the uncached service against PIL decoding every call. */
function coldTable(results: Record<string, PipelineResults>): string[] {
  const header = [
    "pipeline".padEnd(14),
    "svc c=1 ops/s",
    "p50 ms",
    "p99 ms",
    "svc c=2 ops/s",
    "p50 ms",
    "p99 ms",
    "PIL ops/s",
    "p50 ms",
    "p99 ms",
    "x PIL (c=1)",
    "x PIL (c=2)",
    "CPU ms/call svc",
    "PIL",
    "x less CPU",
  ];
  const lines = [header.join("  ")];
  for (const [name, { service_c1: one, service_c2: two, pil }] of Object.entries(results)) {
    lines.push(
      [
        name.padEnd(14),
        format(one.ops_per_s).padStart(13),
        format(one.p50_ms).padStart(6),
        format(one.p99_ms).padStart(6),
        format(two.ops_per_s).padStart(13),
        format(two.p50_ms).padStart(6),
        format(two.p99_ms).padStart(6),
        format(pil.ops_per_s).padStart(9),
        format(pil.p50_ms).padStart(6),
        format(pil.p99_ms).padStart(6),
        format(one.ops_per_s / pil.ops_per_s, 2).padStart(11),
        format(two.ops_per_s / pil.ops_per_s, 2).padStart(11),
        format(one.cpu_ms_per_call).padStart(15),
        format(pil.cpu_ms_per_call).padStart(4),
        format(pil.cpu_ms_per_call / one.cpu_ms_per_call, 2).padStart(10),
      ].join("  "),
    );
  }
  return lines;
}

/** Every variant of every pipeline, each against both PIL baselines. */
function variantTable(results: Record<string, PipelineResults>): string[] {
  const header = [
    "pipeline".padEnd(14),
    "variant".padEnd(13),
    "ops/s",
    "p50 ms",
    "p99 ms",
    "CPU ms/call",
    "client ms/call",
    "x PIL cold",
    "x PIL warm",
  ];
  const lines = [header.join("  ")];
  for (const [name, figures] of Object.entries(results)) {
    const variants: Array<[string, Figures]> = [
      ["svc cold c=1", figures.service_c1],
      ["svc cold c=2", figures.service_c2],
      ["svc new c=1", figures.service_new_c1],
      ["svc new c=2", figures.service_new_c2],
      ["svc warm c=1", figures.service_warm_c1],
      ["svc warm c=2", figures.service_warm_c2],
      ["svc ref c=1", figures.service_ref_c1],
      ["svc ref c=2", figures.service_ref_c2],
      ["PIL cold", figures.pil],
      ["PIL warm", figures.pil_warm],
    ];
    for (const [index, [variant, row]] of variants.entries()) {
      lines.push(
        [
          (index === 0 ? name : "").padEnd(14),
          variant.padEnd(13),
          format(row.ops_per_s).padStart(5),
          format(row.p50_ms).padStart(6),
          format(row.p99_ms).padStart(6),
          format(row.cpu_ms_per_call).padStart(11),
          (row.client_cpu_ms_per_call === undefined ? "-" : format(row.client_cpu_ms_per_call)).padStart(14),
          format(row.ops_per_s / figures.pil.ops_per_s, 2).padStart(10),
          format(row.ops_per_s / figures.pil_warm.ops_per_s, 2).padStart(10),
        ].join("  "),
      );
    }
  }
  return lines;
}

async function main(): Promise<void> {
  const image = await benchmarkImage();
  const dir = mkdtempSync(join(tmpdir(), "toolplane-image-bench-"));
  const imagePath = join(dir, "bench.jpg");
  writeFileSync(imagePath, image);
  const uncachedService = await spawnService("image", { TOOLPLANE_IMAGE_DECODED_CACHE_MB: "0" });
  const cachedService = await spawnService("image", { TOOLPLANE_METRICS_PORT: "0" });
  const uncached = createClient(ImageServiceClient, uncachedService.address);
  const cached = createClient(ImageServiceClient, cachedService.address);
  const uncachedPid = uncachedService.child.pid ?? 0;
  const cachedPid = cachedService.child.pid ?? 0;
  // Unique bytes after the end-of-image marker: the same pixels, a new cache key (the service accepts trailers).
  let unseen = 0;
  const newImage: ImageFor = () => {
    unseen += 1;
    const trailer = Buffer.alloc(16);
    trailer.writeUInt32BE(unseen);
    return Buffer.concat([image, trailer]);
  };
  const sameImage: ImageFor = () => image;
  const results: Record<string, PipelineResults> = {};
  let counts: { hits: number; misses: number };
  let enlargers: { native: number; libvips: number; pillow: number };
  try {
    const serviceFigures: Record<string, Omit<PipelineResults, "pil" | "pil_warm">> = {};
    // One service works at a time, so no measurement steals another's cores.
    for (const [name, operations] of Object.entries(PIPELINES)) {
      serviceFigures[name] = {
        service_c1: await measureService(bytesTo(uncached), sameImage, operations, 1, uncachedPid),
        service_c2: await measureService(bytesTo(uncached), sameImage, operations, 2, uncachedPid),
        service_new_c1: await measureService(bytesTo(cached), newImage, operations, 1, cachedPid),
        service_new_c2: await measureService(bytesTo(cached), newImage, operations, 2, cachedPid),
        service_warm_c1: await measureService(bytesTo(cached), sameImage, operations, 1, cachedPid),
        service_warm_c2: await measureService(bytesTo(cached), sameImage, operations, 2, cachedPid),
        service_ref_c1: await measureService(theGatewayWay(cached), sameImage, operations, 1, cachedPid),
        service_ref_c2: await measureService(theGatewayWay(cached), sameImage, operations, 2, cachedPid),
      };
    }
    counts = await cacheCounts(cachedService);
    // PIL runs after the services have stopped working, so neither measurement steals the other's cores.
    const pil = await measurePil(imagePath);
    enlargers = { ...(await measureEnlargers(image)), pillow: pil.enlarge.cpu_ms_per_call };
    for (const [name, figures] of Object.entries(serviceFigures)) {
      const [cold, warm] = [pil.cold[name], pil.warm[name]];
      if (cold === undefined || warm === undefined) throw new Error(`PIL reference did not report ${name}`);
      results[name] = { ...figures, pil: cold, pil_warm: warm };
    }
  } finally {
    uncached.close();
    cached.close();
    await uncachedService.stop();
    await cachedService.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const legend = [
    "svc = the image service over gRPC, measured from the client; c=N calls in flight; PIL = one Python process.",
    "svc cold: cache off (TOOLPLANE_IMAGE_DECODED_CACHE_MB=0), every call decodes. PIL cold: decodes every call.",
    "svc new: cache on (defaults), every call a new image (unique bytes after the JPEG end): first sightings, read as without a cache.",
    "svc warm: cache on, the same image every call: pixels from the cache. PIL warm: decoded once, kept in memory.",
    "svc ref: as svc warm, sent the way the gateway sends: the bytes twice, then the image's sha256 alone (no transfer, no hashing).",
    "x PIL cold / x PIL warm: ops/s divided by PIL's. CPU ms/call: service process user+system, PIL process time.",
    "client ms/call: this benchmark's own CPU per call (protobuf, HTTP/2); it shares the cores with the service.",
  ];
  process.stdout.write(
    `image benchmark${quick ? " (--quick: tiny run, figures not meaningful)" : ""}: 1920x1080 JPEG (${image.length} bytes), ` +
      `${ITERATIONS} calls per pipeline and variant after ${WARMUP} warm-up, ${availableParallelism()} cores\n` +
      `${coldTable(results).join("\n")}\n\n${legend.join("\n")}\n` +
      `cache on /metrics after the run: ${counts.hits} hits, ${counts.misses} misses\n` +
      `${variantTable(results).join("\n")}\n\n` +
      "crop+zoom's enlargement alone (300x200 -> 600x400 bicubic from decoded pixels, in-process, CPU ms/call): " +
      `native resampler ${format(enlargers.native, 2)}, libvips ${format(enlargers.libvips, 2)} ` +
      `(${format(enlargers.libvips / enlargers.native, 1)}x the native), Pillow ${format(enlargers.pillow, 2)} ` +
      `(${format(enlargers.pillow / enlargers.native, 1)}x the native)\n`,
  );
  process.stdout.write(
    `${JSON.stringify({ benchmark: "image", quick, iterations: ITERATIONS, cache: counts, enlargers, results })}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`image benchmark failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
