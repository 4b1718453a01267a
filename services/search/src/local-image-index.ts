import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import sharp from "sharp";
import { z } from "zod";
import { errorMessage } from "../../runtime/src/index.js";
import { hammingDistance, hashImage, MAX_DISTANCE, MAX_INPUT_PIXELS, type PerceptualHash } from "./image-hash.js";
import type { ProviderResult, Thumbnail } from "./types.js";

export interface SourceImage {
  data: Uint8Array;
  title: string;
  url: string;
}

interface IndexedImage {
  title: string;
  url: string;
  hash: PerceptualHash;
  thumbnail: Thumbnail;
}

/** Thumbnails are small JPEGs: they travel inline to the model and into the cache. */
const THUMBNAIL_EDGE = 160;

export async function makeThumbnail(data: Uint8Array): Promise<Thumbnail> {
  const { data: bytes, info } = await sharp(data, { limitInputPixels: MAX_INPUT_PIXELS })
    .rotate()
    .resize(THUMBNAIL_EDGE, THUMBNAIL_EDGE, { fit: "inside", withoutEnlargement: true })
    .flatten({ background: "#ffffff" })
    .jpeg({ quality: 80 })
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(bytes), mimeType: "image/jpeg", width: info.width, height: info.height };
}

/**
 * Reverse image search by perceptual hash: nearest indexed images by Hamming
 * distance over dHash + pHash, so resized or recompressed copies still match.
 * A linear scan: at a few bits per comparison it handles ~10^5 images per query
 * in milliseconds, more than a local demo index needs.
 */
export class LocalImageIndex {
  private readonly images: IndexedImage[] = [];

  /** maxDistance: matches farther than this (of 128 bits) are not similar enough to report. */
  constructor(private readonly maxDistance: number) {}

  get size(): number {
    return this.images.length;
  }

  async add(source: SourceImage): Promise<void> {
    const [hash, thumbnail] = await Promise.all([hashImage(source.data), makeThumbnail(source.data)]);
    this.images.push({ title: source.title, url: source.url, hash, thumbnail });
  }

  async search(data: Uint8Array, count: number): Promise<ProviderResult[]> {
    const hash = await hashImage(data);
    return this.images
      .map((image) => ({ image, distance: hammingDistance(hash, image.hash) }))
      .filter((candidate) => candidate.distance <= this.maxDistance)
      .sort((a, b) => a.distance - b.distance)
      .slice(0, count)
      .map(({ image, distance }) => ({
        title: image.title,
        url: image.url,
        snippet: `perceptual hash distance ${distance}/${MAX_DISTANCE}`,
        date: "",
        thumbnail: image.thumbnail,
        score: 1 - distance / MAX_DISTANCE,
      }));
  }
}

const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".tiff", ".avif"]);
const metadataShape = z.object({ file: z.string().min(1), title: z.string().min(1), url: z.string().min(1) });

/**
 * Reads a folder of images. With an `index.jsonl` ({file, title, url} per line)
 * only the listed files are indexed, with those titles and urls; without one,
 * every image file is indexed, titled by its file name.
 */
export async function readImageDir(dir: string): Promise<SourceImage[]> {
  const metadataPath = join(dir, "index.jsonl");
  if (existsSync(metadataPath)) {
    const lines = (await readFile(metadataPath, "utf8")).split("\n");
    const images: SourceImage[] = [];
    for (const [index, line] of lines.entries()) {
      if (line.trim() === "") continue;
      let parsed: z.infer<typeof metadataShape>;
      try {
        parsed = metadataShape.parse(JSON.parse(line));
      } catch (error) {
        throw new Error(`${metadataPath}:${index + 1}: ${errorMessage(error)}`);
      }
      images.push({ data: await readFile(join(dir, parsed.file)), title: parsed.title, url: parsed.url });
    }
    return images;
  }
  const files = (await readdir(dir)).filter((file) => IMAGE_EXTENSIONS.has(extname(file).toLowerCase())).sort();
  return Promise.all(
    files.map(async (file) => ({
      data: await readFile(join(dir, file)),
      title: file.slice(0, file.length - extname(file).length).replace(/[-_]+/g, " "),
      url: `file:${file}`,
    })),
  );
}
