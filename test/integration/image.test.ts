import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import sharp from "sharp";
import {
  CoordinateUnit,
  type GetMetadataRequest,
  type GetMetadataResponse,
  ImageFormat,
  ImageServiceClient,
  type Operation,
  type ProcessRequest,
  type ProcessResponse,
} from "../../generated/toolplane/image/v1/image.js";
import { createClient } from "../../services/runtime/src/index.js";
import { BLUE, GREEN, near, photoJpeg, pixelsOf, quadrants, WHITE } from "../fixtures/image/generate.js";
import { distRoot, metricValue, type SpawnedService, scrapeMetrics, spawnService } from "../support/processes.js";
import { rejectsWithStatus } from "../support/rpc.js";

type Client = InstanceType<typeof ImageServiceClient>;

function process(client: Client, request: Partial<ProcessRequest>, deadlineMs?: number): Promise<ProcessResponse> {
  const full: ProcessRequest = { image: undefined, operations: [], output: undefined, ...request };
  return new Promise((resolve, reject) => {
    const options = deadlineMs === undefined ? {} : { deadline: new Date(Date.now() + deadlineMs) };
    client.process(full, new Metadata(), options, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

function getMetadata(client: Client, request: GetMetadataRequest): Promise<GetMetadataResponse> {
  return new Promise((resolve, reject) => {
    client.getMetadata(request, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

const data = (bytes: Buffer) => ({ data: bytes, mimeType: "", width: 0, height: 0 });
const pixelBox = (left: number, top: number, right: number, bottom: number) => ({
  left,
  top,
  right,
  bottom,
  unit: CoordinateUnit.COORDINATE_UNIT_PIXELS,
});
const png = { format: ImageFormat.IMAGE_FORMAT_PNG, quality: 0, minShortSide: 0 };

describe("image service over a real socket", () => {
  let service: SpawnedService;
  let client: Client;
  before(async () => {
    service = await spawnService("image", {
      TOOLPLANE_IMAGE_MAX_INPUT_PIXELS: "3000000",
      TOOLPLANE_IMAGE_MAX_INPUT_BYTES: "4000000",
    });
    client = createClient(ImageServiceClient, service.address);
  });
  after(async () => {
    client?.close();
    await service?.stop();
  });

  it("GetMetadata reports the header, with sizes after EXIF orientation", async () => {
    const jpeg = await (await quadrants(200, 100)).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const { metadata } = await getMetadata(client, { image: data(jpeg) });
    assert.deepEqual(metadata, {
      width: 100,
      height: 200,
      format: "jpeg",
      channels: 3,
      hasAlpha: false,
      orientation: 6,
      sizeBytes: jpeg.length,
      pages: 1,
    });
  });

  it("crop + zoom of a 1920x1080 JPEG with DeepEyes rules returns the enlarged region", async () => {
    const photo = await (await quadrants(1920, 1080)).jpeg({ quality: 95 }).toBuffer();
    const operations: Operation[] = [
      {
        zoom: {
          box: pixelBox(1000, 600, 1300, 800),
          scale: 2,
          targetWidth: 0,
          targetHeight: 0,
          minShortSide: 0,
          deepeyesRules: true,
        },
      },
    ];
    const response = await process(client, { image: data(photo), operations });
    assert.equal(response.image?.mimeType, "image/jpeg");
    assert.deepEqual([response.image?.width, response.image?.height], [600, 400]);
    assert.deepEqual([response.input?.width, response.input?.height, response.input?.format], [1920, 1080, "jpeg"]);
    assert.ok((response.timing?.totalMs ?? 0) > 0);
    const pixels = await pixelsOf(response.image?.data ?? Buffer.alloc(0));
    assert.ok(near(pixels.at(300, 200), WHITE, 10), `${pixels.at(300, 200)}`);
  });

  it("runs a long chained pipeline and honours the output options", async () => {
    const input = await (await quadrants(400, 200)).png().toBuffer();
    const response = await process(client, {
      image: data(input),
      operations: [
        { rotate: { angleDegrees: 90, background: "" } },
        { crop: { box: { left: 0, top: 0, right: 1, bottom: 0.5, unit: CoordinateUnit.COORDINATE_UNIT_FRACTION } } },
        {
          resize: {
            width: 0,
            height: 0,
            fit: 0,
            scale: 0,
            smart: { factor: 28, minPixels: 0, maxPixels: 0 },
          },
        },
        { adjust: { brightness: 1.1, contrast: 1.1, gamma: 1.2, saturation: 1.1 } },
        { sharpen: { sigma: 1 } },
        {
          annotate: {
            annotations: [
              {
                box: {
                  left: 100,
                  top: 100,
                  right: 900,
                  bottom: 900,
                  unit: CoordinateUnit.COORDINATE_UNIT_NORMALIZED_1000,
                },
                label: "region",
                color: "yellow",
                lineWidth: 3,
              },
            ],
          },
        },
      ],
      output: { format: ImageFormat.IMAGE_FORMAT_WEBP, quality: 80, minShortSide: 0 },
    });
    assert.equal(response.image?.mimeType, "image/webp");
    // 200x200 after rotate + crop; smart resize keeps 196x196 (multiples of 28).
    assert.deepEqual([response.image?.width, response.image?.height], [196, 196]);
    const pixels = await pixelsOf(response.image?.data ?? Buffer.alloc(0));
    // Inside the annotation box: left half blue (the original bottom-left after the quarter turn), right half red.
    assert.ok(near(pixels.at(50, 98), BLUE, 40), `left ${pixels.at(50, 98)}`);
    assert.ok(near(pixels.at(150, 98), [255, 0, 0], 40), `right ${pixels.at(150, 98)}`);
    // The annotation's top edge (y = 19.6 at 100/1000 of 196) is drawn in yellow.
    assert.ok(near(pixels.at(98, 21), [255, 255, 0], 70), `box edge ${pixels.at(98, 21)}`);
  });

  it("upscales tiny results to output.min_short_side", async () => {
    const input = await (await quadrants(40, 20)).png().toBuffer();
    const response = await process(client, {
      image: data(input),
      operations: [{ crop: { box: pixelBox(20, 0, 40, 10) } }],
      output: { format: ImageFormat.IMAGE_FORMAT_PNG, quality: 0, minShortSide: 32 },
    });
    assert.deepEqual([response.image?.width, response.image?.height], [64, 32]);
    assert.deepEqual((await pixelsOf(response.image?.data ?? Buffer.alloc(0))).at(10, 10), GREEN);
  });

  describe("bad input: INVALID_ARGUMENT, class MODEL, message naming the field and limit", () => {
    const inputs = (async () => ({
      quadrant: await (await quadrants(200, 100)).png().toBuffer(),
      photo: await photoJpeg(320, 240),
    }))();

    it("missing image, references, empty data", async () => {
      await rejectsWithStatus(process(client, {}), status.INVALID_ARGUMENT, "MODEL", /image\.data is required/);
      // A reference to an image this service does not hold: the caller (the gateway) has the bytes to send instead.
      await rejectsWithStatus(
        process(client, { image: { sha256: "ab".repeat(32), mimeType: "", width: 0, height: 0 } }),
        status.NOT_FOUND,
        "INFRASTRUCTURE",
        /image\.sha256 a{0}(ab){32} is not held decoded by this image service for this call; send image\.data instead/,
      );
      await rejectsWithStatus(
        process(client, { image: { sha256: "not-a-digest", mimeType: "", width: 0, height: 0 } }),
        status.INVALID_ARGUMENT,
        "MODEL",
        /image\.sha256 must be 64 lowercase hex digits/,
      );
      await rejectsWithStatus(
        getMetadata(client, { image: { sha256: "ab".repeat(32), mimeType: "", width: 0, height: 0 } }),
        status.INVALID_ARGUMENT,
        "MODEL",
        /GetMetadata reads the image's header: send image\.data/,
      );
      await rejectsWithStatus(
        getMetadata(client, { image: undefined }),
        status.INVALID_ARGUMENT,
        "MODEL",
        /image\.data is required/,
      );
    });

    it("corrupt, truncated and unsupported images", async () => {
      const { photo } = await inputs;
      await rejectsWithStatus(
        process(client, { image: data(Buffer.from("GIF89a but not really")) }),
        status.INVALID_ARGUMENT,
        "MODEL",
        /image\.data could not be decoded/,
      );
      await rejectsWithStatus(
        process(client, { image: data(photo.subarray(0, 3000)) }),
        status.INVALID_ARGUMENT,
        "MODEL",
        /image\.data is truncated/,
      );
      await rejectsWithStatus(
        getMetadata(client, { image: data(Buffer.from([1, 2, 3, 4])) }),
        status.INVALID_ARGUMENT,
        "MODEL",
        /image\.data is not a jpeg, png, webp, gif, tiff image/,
      );
      const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
      await rejectsWithStatus(
        process(client, { image: data(svg) }),
        status.INVALID_ARGUMENT,
        "MODEL",
        /image\.data is not a jpeg, png, webp, gif, tiff image/,
      );
    });

    it("too many pixels and too many bytes name the limit and its variable", async () => {
      const bomb = await sharp({ create: { width: 2000, height: 2000, channels: 3, background: "black" } })
        .png()
        .toBuffer();
      await rejectsWithStatus(
        process(client, { image: data(bomb) }),
        status.INVALID_ARGUMENT,
        "MODEL",
        /2000x2000 = 4000000 pixels, over the limit of 3000000 \(TOOLPLANE_IMAGE_MAX_INPUT_PIXELS\)/,
      );
      // GetMetadata reads only the header, so it still answers for an image too large to process.
      const { metadata } = await getMetadata(client, { image: data(bomb) });
      assert.deepEqual([metadata?.width, metadata?.height], [2000, 2000]);
      await rejectsWithStatus(
        process(client, { image: data(Buffer.alloc(4_000_001, 1)) }),
        status.INVALID_ARGUMENT,
        "MODEL",
        /image\.data is 4000001 bytes, over the limit of 4000000 \(TOOLPLANE_IMAGE_MAX_INPUT_BYTES\)/,
      );
    });

    it("non-finite numbers, boxes outside the image, empty crops, bad enums", async () => {
      const { quadrant } = await inputs;
      const cases: Array<[Operation[], RegExp]> = [
        [
          [{ rotate: { angleDegrees: Number.NaN, background: "" } }],
          /operations\[0\]\.rotate\.angle_degrees must be finite/,
        ],
        [
          [{ invert: {} }, { crop: { box: pixelBox(Number.POSITIVE_INFINITY, 0, 10, 10) } }],
          /operations\[1\]\.crop\.box\.left must be finite/,
        ],
        [
          [{ crop: { box: pixelBox(500, 500, 600, 600) } }],
          /operations\[0\]\.crop\.box .* entirely outside the 200x100 image/,
        ],
        [[{ crop: { box: pixelBox(10, 10, 50, 10) } }], /top \(10\) must be less than bottom \(10\)/],
        [
          [
            {
              zoom: {
                box: pixelBox(0, 0, 150, 1),
                scale: 0,
                targetWidth: 0,
                targetHeight: 0,
                minShortSide: 0,
                deepeyesRules: true,
              },
            },
          ],
          /operations\[0\]\.zoom\.box is invalid under DeepEyes rules: aspect ratio 150\.00 exceeds 100/,
        ],
        [[{ flip: { axis: 0 } }], /operations\[0\]\.flip\.axis must be AXIS_HORIZONTAL or AXIS_VERTICAL/],
        [[{ blur: { sigma: 1000 } }], /operations\[0\]\.blur\.sigma must be in \[0\.3, 100\], got 1000/],
        [[{}], /operations\[0\] has no operation set/],
        [
          Array.from({ length: 33 }, () => ({ invert: {} })),
          /operations has 33 entries, over the limit of 32 \(TOOLPLANE_IMAGE_MAX_OPERATIONS\)/,
        ],
      ];
      for (const [operations, message] of cases) {
        await rejectsWithStatus(
          process(client, { image: data(quadrant), operations }),
          status.INVALID_ARGUMENT,
          "MODEL",
          message,
        );
      }
      await rejectsWithStatus(
        process(client, {
          image: data(quadrant),
          output: { format: ImageFormat.IMAGE_FORMAT_JPEG, quality: 500, minShortSide: 0 },
        }),
        status.INVALID_ARGUMENT,
        "MODEL",
        /output\.quality must be an integer in \[1, 100\], got 500/,
      );
    });
  });

  it("a call past its deadline ends with DEADLINE_EXCEEDED and the service keeps serving", async () => {
    const heavy = await photoJpeg(1600, 1600);
    const blurs: Operation[] = Array.from({ length: 6 }, () => ({ blur: { sigma: 40 } }));
    await rejectsWithStatus(
      process(client, { image: data(heavy), operations: blurs }, 50),
      status.DEADLINE_EXCEEDED,
      undefined,
      /./,
    );
    const input = await (await quadrants(20, 20)).png().toBuffer();
    const response = await process(client, { image: data(input), output: png });
    assert.deepEqual([response.image?.width, response.image?.height], [20, 20]);
  });
});

describe("image service admission control", () => {
  it("a full queue answers RESOURCE_EXHAUSTED, class INFRASTRUCTURE, with a retry hint", async () => {
    const service = await spawnService("image", { TOOLPLANE_IMAGE_WORKERS: "1", TOOLPLANE_IMAGE_MAX_QUEUE: "0" });
    const client = createClient(ImageServiceClient, service.address);
    try {
      const heavy = await photoJpeg(1200, 1200);
      const request = {
        image: data(heavy),
        operations: [{ blur: { sigma: 30 } }, { blur: { sigma: 30 } }],
        output: png,
      };
      const results = await Promise.allSettled(Array.from({ length: 4 }, () => process(client, request)));
      const rejected = results.filter((result) => result.status === "rejected") as PromiseRejectedResult[];
      assert.ok(
        results.some((result) => result.status === "fulfilled"),
        "at least one call must run",
      );
      assert.ok(rejected.length >= 1, "with one worker and no queue, concurrent calls must be refused");
      for (const { reason } of rejected) {
        const error = reason as ServiceError;
        assert.equal(error.code, status.RESOURCE_EXHAUSTED, error.details);
        assert.deepEqual(error.metadata.get("toolplane-error-class"), ["INFRASTRUCTURE"]);
        assert.deepEqual(error.metadata.get("toolplane-retry-after-ms"), ["100"]);
        assert.match(error.details, /TOOLPLANE_IMAGE_MAX_QUEUE=0/);
      }
    } finally {
      client.close();
      await service.stop();
    }
  });
});

describe("image service decoded-image cache", () => {
  it("serves a repeated image from the cache, with the pixels of a service without one, and reports it on /metrics", async () => {
    const cachedService = await spawnService("image", { TOOLPLANE_METRICS_PORT: "0" });
    const plainService = await spawnService("image", { TOOLPLANE_IMAGE_DECODED_CACHE_MB: "0" });
    const cached = createClient(ImageServiceClient, cachedService.address);
    const plain = createClient(ImageServiceClient, plainService.address);
    try {
      const photo = await photoJpeg(640, 480);
      const request: Partial<ProcessRequest> = {
        image: data(photo),
        operations: [
          {
            zoom: {
              box: pixelBox(100, 100, 400, 300),
              scale: 2,
              targetWidth: 0,
              targetHeight: 0,
              minShortSide: 0,
              deepeyesRules: true,
            },
          },
        ],
        output: { format: ImageFormat.IMAGE_FORMAT_JPEG, quality: 90, minShortSide: 0 },
      };
      // The default admits an image on its second sighting: the first call reads the bytes as without a cache.
      const first = await process(cached, request);
      const miss = await process(cached, request);
      const hit = await process(cached, request);
      assert.deepEqual(first.image?.data, miss.image?.data);
      const expected = await process(plain, request);
      assert.deepEqual(hit.image?.data, miss.image?.data);
      assert.deepEqual(hit.input, expected.input);
      const pixels = (response: ProcessResponse) =>
        sharp(response.image?.data ?? Buffer.alloc(0))
          .raw()
          .toBuffer();
      assert.ok(
        (await pixels(miss)).equals(await pixels(expected)),
        "cached and uncached services give the same pixels",
      );

      const text = await scrapeMetrics(cachedService);
      assert.equal(metricValue(text, "toolplane_image_decoded_cache_hits_total"), 1);
      assert.equal(metricValue(text, "toolplane_image_decoded_cache_misses_total"), 1);
      assert.equal(metricValue(text, "toolplane_image_decoded_cache_bypasses_total"), 1);
      // Nothing runs between calls: every worker idle, nobody waiting.
      assert.equal(metricValue(text, 'toolplane_queue_depth{queue="image_workers"}'), 0);
      assert.equal(metricValue(text, 'toolplane_pool_size{pool="image_workers",state="busy"}'), 0);
      assert.ok((metricValue(text, 'toolplane_pool_size{pool="image_workers",state="idle"}') ?? 0) >= 1);
      assert.equal(metricValue(text, "toolplane_image_decoded_cache_bytes"), 640 * 480 * 3);
      assert.equal(metricValue(text, "toolplane_image_decoded_cache_entries"), 1);
    } finally {
      cached.close();
      plain.close();
      await cachedService.stop();
      await plainService.stop();
    }
  });
});

describe("image service configuration", () => {
  async function startFails(env: Record<string, string>): Promise<string> {
    const child = spawn(globalThis.process.execPath, [join(distRoot, "services", "image", "src", "main.js")], {
      env: { ...globalThis.process.env, TOOLPLANE_GRPC_PORT: "0", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 1, stderr);
    return stderr;
  }

  it("refuses a non-numeric limit, naming the variable", async () => {
    assert.match(
      await startFails({ TOOLPLANE_IMAGE_MAX_INPUT_PIXELS: "lots" }),
      /TOOLPLANE_IMAGE_MAX_INPUT_PIXELS="lots"/,
    );
  });

  it("refuses a byte limit above the gRPC message limit", async () => {
    assert.match(
      await startFails({ TOOLPLANE_IMAGE_MAX_INPUT_BYTES: String(1024 ** 3) }),
      /TOOLPLANE_IMAGE_MAX_INPUT_BYTES=.*gRPC message limit/,
    );
  });

  it("refuses a negative decoded-image cache size, naming the variable", async () => {
    assert.match(await startFails({ TOOLPLANE_IMAGE_DECODED_CACHE_MB: "-1" }), /TOOLPLANE_IMAGE_DECODED_CACHE_MB="?-1/);
  });

  it("refuses more workers than the libuv thread pool can carry", async () => {
    assert.match(
      await startFails({ TOOLPLANE_IMAGE_WORKERS: "8", UV_THREADPOOL_SIZE: "4" }),
      /TOOLPLANE_IMAGE_WORKERS=8: needs UV_THREADPOOL_SIZE of at least 9/,
    );
  });
});
