/**
 * The small world the DeepEyes end-to-end tests run in: a 640x480 "photo", a local
 * search corpus and a reverse-image-search index holding that photo, and the real
 * image, code and search services plus the gateway on loopback.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { freePort, type SpawnedService, spawnService } from "./processes.js";

/** A 640x480 white "photo" with a red sign at (100,50)-(300,150) and a blue bar below it. */
export async function photo(): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480">
    <rect width="640" height="480" fill="#ffffff"/>
    <rect x="100" y="50" width="200" height="100" fill="#ff0000"/>
    <rect x="50" y="300" width="540" height="40" fill="#0000ff"/>
  </svg>`;
  return sharp(Buffer.from(svg)).removeAlpha().png().toBuffer();
}

export const CORPUS = [
  {
    title: "Eiffel Tower",
    url: "https://example.test/eiffel",
    snippet: "The Eiffel Tower in Paris is 330 metres tall.",
    date: "2024-03-31",
  },
  { title: "Mount Fuji", url: "https://example.test/fuji", snippet: "Japan's highest volcano rises 3,776 m." },
  { title: "Great Wall", url: "https://example.test/wall", snippet: "A series of fortifications across China." },
];

export interface DeepEyesWorld {
  input: Buffer;
  image: SpawnedService;
  code: SpawnedService;
  search: SpawnedService;
  gateway: SpawnedService;
  /** Every process started, in start order (stop in reverse). */
  processes: SpawnedService[];
  /** Stops every process and removes the data directory. */
  stop(): Promise<void>;
}

/** Starts the services; `code` sets the code service's environment. */
export async function startDeepEyesWorld(code: Record<string, string> = {}): Promise<DeepEyesWorld> {
  const input = await photo();
  const dataDir = mkdtempSync(join(tmpdir(), "toolplane-deepeyes-"));
  writeFileSync(join(dataDir, "corpus.jsonl"), CORPUS.map((doc) => JSON.stringify(doc)).join("\n"));
  const imageDir = join(dataDir, "images");
  mkdirSync(imageDir);
  writeFileSync(join(imageDir, "card.png"), input);
  writeFileSync(
    join(imageDir, "index.jsonl"),
    `${JSON.stringify({ file: "card.png", title: "Red sign on white", url: "https://example.test/card" })}\n`,
  );
  const processes: SpawnedService[] = [];
  const stop = async () => {
    for (const service of [...processes].reverse()) await service.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const image = await spawnService("image");
    processes.push(image);
    const codeService = await spawnService("code", code);
    processes.push(codeService);
    const search = await spawnService("search", {
      TOOLPLANE_SEARCH_CORPUS: join(dataDir, "corpus.jsonl"),
      TOOLPLANE_SEARCH_IMAGE_DIR: imageDir,
      TOOLPLANE_SEARCH_IMAGE_MAX_DISTANCE: "0",
      TOOLPLANE_SEARCH_IMAGE_PORT: String(await freePort()),
    });
    processes.push(search);
    const gateway = await spawnService("gateway", {
      TOOLPLANE_IMAGE_ADDR: image.address,
      TOOLPLANE_CODE_ADDR: codeService.address,
      TOOLPLANE_SEARCH_ADDR: search.address,
    });
    processes.push(gateway);
    return { input, image, code: codeService, search, gateway, processes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
