import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { readCorpus } from "./corpus.js";
import { hammingDistance, hashImage } from "./image-hash.js";
import { LocalImageIndex, readImageDir } from "./local-image-index.js";
import { LocalTextIndex } from "./local-text-index.js";
import { sampleCorpus } from "./sample-corpus.js";
import { sampleImages } from "./sample-images.js";

describe("local BM25 text index", () => {
  const index = new LocalTextIndex();
  before(() => index.add(sampleCorpus()));

  it("ships a few hundred documents", () => {
    assert.ok(index.size >= 200, `only ${index.size} documents`);
  });

  it("ranks the page about the query first", () => {
    const cases: Array<[string, RegExp]> = [
      ["Paris capital", /^Paris, capital of France$/],
      ["perceptual hash near duplicate images", /^Perceptual hashing$/],
      ["deepest freshwater lake", /^Lake Baikal$/],
      ["Otsu threshold", /^Thresholding and Otsu's method$/],
      ["atomic number 79", /^Gold \(Au\)$/],
      ["Albert Einstein", /^Albert Einstein$/],
      ["who wrote Romeo and Juliet", /^William Shakespeare$/],
      ["first president of the United States", /^George Washington$/],
    ];
    for (const [query, expected] of cases) {
      const [first] = index.search(query, 5);
      assert.match(first?.title ?? "(nothing)", expected, `query ${query}`);
    }
  });

  it("scores decrease down the list and results carry url, snippet and date", () => {
    const results = index.search("river delta", 5);
    assert.equal(results.length, 5);
    for (let i = 1; i < results.length; i += 1) assert.ok((results[i - 1]?.score ?? 0) >= (results[i]?.score ?? 0));
    for (const result of results) {
      assert.match(result.url, /^https:\/\/corpus\.toolplane\.invalid\//);
      assert.ok(result.snippet.length > 0);
      assert.match(result.date, /^\d{4}-\d{2}-\d{2}$/);
    }
  });

  it("a term found nowhere gives no results; function words alone match nothing", () => {
    assert.deepEqual(index.search("xylophonequark", 5), []);
    assert.deepEqual(index.search("the of and", 5), []);
  });
});

describe("reading a JSONL corpus", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "search-corpus-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("indexes {title,url,text|snippet,date} lines and skips blank lines", async () => {
    const path = join(dir, "ok.jsonl");
    writeFileSync(
      path,
      `${JSON.stringify({ title: "Quokka", url: "https://x.test/q", text: "A small marsupial from Rottnest Island." })}\n\n${JSON.stringify({ title: "Numbat", url: "https://x.test/n", snippet: "Termite-eating marsupial.", date: "2024" })}\n`,
    );
    const documents = await readCorpus(path);
    assert.equal(documents.length, 2);
    const index = new LocalTextIndex();
    index.add(documents);
    assert.equal(index.search("termite", 1)[0]?.title, "Numbat");
    assert.equal(index.search("termite", 1)[0]?.date, "2024");
  });

  it("a bad line fails with file, line number and the problem", async () => {
    const path = join(dir, "bad.jsonl");
    writeFileSync(path, `${JSON.stringify({ title: "A", url: "u", text: "t" })}\n{"title":"B","url":"u"}\n`);
    await assert.rejects(readCorpus(path), /bad\.jsonl:2: .*needs a non-empty text or snippet/);
    writeFileSync(path, "{not json\n");
    await assert.rejects(readCorpus(path), /bad\.jsonl:1: not JSON/);
  });
});

describe("local reverse image index (perceptual hashes)", () => {
  const index = new LocalImageIndex(20);
  let samples: Awaited<ReturnType<typeof sampleImages>>;
  before(async () => {
    samples = await sampleImages();
    for (const sample of samples) await index.add(sample);
  });

  it("every sample image is its own nearest neighbour at distance 0", async () => {
    for (const sample of samples) {
      const [first] = await index.search(sample.data, 3);
      assert.equal(first?.url, sample.url);
      assert.equal(first?.score, 1);
    }
  });

  it("finds a resized, JPEG-recompressed copy of an indexed image", async () => {
    for (const sample of samples.filter((_, i) => i % 5 === 0)) {
      const copy = await sharp(sample.data).resize(173, 130).jpeg({ quality: 55 }).toBuffer();
      const [first] = await index.search(copy, 3);
      assert.equal(first?.url, sample.url, `copy of ${sample.title}`);
      assert.ok((first?.score ?? 0) > 0.85, `score ${first?.score}`);
    }
  });

  it("returns thumbnails as small inline JPEGs", async () => {
    const [first] = await index.search(samples[0]?.data ?? new Uint8Array(), 1);
    const thumbnail = first?.thumbnail;
    assert.ok(thumbnail);
    assert.equal(thumbnail.mimeType, "image/jpeg");
    assert.ok(thumbnail.width <= 160 && thumbnail.height <= 160);
    const metadata = await sharp(thumbnail.data).metadata();
    assert.equal(metadata.format, "jpeg");
    assert.equal(metadata.width, thumbnail.width);
  });

  it("an unrelated photo-like image matches nothing within the distance limit", async () => {
    const noise = Buffer.alloc(64 * 64 * 3);
    let seed = 7;
    for (let i = 0; i < noise.length; i += 1) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      noise[i] = seed & 0xff;
    }
    const image = await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toBuffer();
    assert.deepEqual(await index.search(image, 5), []);
  });

  it("hashes are stable across format and scale, distant for different images", async () => {
    const [a, b] = samples;
    const hashA = await hashImage(a?.data ?? new Uint8Array());
    const hashA2 = await hashImage(await sharp(a?.data).resize(640, 480).webp({ quality: 70 }).toBuffer());
    const hashB = await hashImage(b?.data ?? new Uint8Array());
    assert.ok(hammingDistance(hashA, hashA2) <= 12, `copy distance ${hammingDistance(hashA, hashA2)}`);
    assert.ok(hammingDistance(hashA, hashB) > 20, `different distance ${hammingDistance(hashA, hashB)}`);
  });

  it("reads a folder with index.jsonl metadata, or titles files by name without one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "search-images-"));
    try {
      const png = await sharp({ create: { width: 20, height: 20, channels: 3, background: "#00aa00" } })
        .png()
        .toBuffer();
      writeFileSync(join(dir, "green_square.png"), png);
      writeFileSync(join(dir, "notes.txt"), "not an image");
      assert.deepEqual(
        (await readImageDir(dir)).map((image) => [image.title, image.url]),
        [["green square", "file:green_square.png"]],
      );
      writeFileSync(
        join(dir, "index.jsonl"),
        `${JSON.stringify({ file: "green_square.png", title: "Green", url: "https://g.test" })}\n`,
      );
      assert.deepEqual(
        (await readImageDir(dir)).map((image) => [image.title, image.url]),
        [["Green", "https://g.test"]],
      );
      writeFileSync(join(dir, "index.jsonl"), '{"file":"green_square.png"}\n');
      await assert.rejects(readImageDir(dir), /index\.jsonl:1: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
