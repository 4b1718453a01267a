import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import Database from "better-sqlite3";
import { joinContents, parseCorpusLine, readCorpusLines } from "./corpus.js";
import { DiskIndexPool } from "./disk-index-pool.js";
import { DiskTextIndex, IndexFileError, matchAny } from "./disk-text-index.js";
import { buildIndex } from "./index-build.js";
import { queryTerms } from "./query-terms.js";
import { sampleCorpus } from "./sample-corpus.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "search-disk-index-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const jsonl = (rows: unknown[]) => `${rows.map((row) => JSON.stringify(row)).join("\n")}\n`;

describe("corpus lines", () => {
  it("reads toolplane lines and Search-R1 lines ({id, contents} with the quoted title first)", () => {
    assert.deepEqual(parseCorpusLine(JSON.stringify({ title: "T", url: "https://x.test/t", text: "body" }), 1), {
      title: "T",
      url: "https://x.test/t",
      text: "body",
    });
    assert.deepEqual(
      parseCorpusLine(JSON.stringify({ id: "17", contents: '"Evan Morris"\nEvan L. Morris was a lobbyist.' }), 3),
      { title: "Evan Morris", url: "corpus:17", text: "Evan L. Morris was a lobbyist." },
    );
    assert.equal(parseCorpusLine(JSON.stringify({ title: "No id", text: "t" }), 9).url, "corpus:9");
    assert.throws(() => parseCorpusLine(JSON.stringify({ title: "A", url: "u" }), 1), /needs a non-empty text/);
    assert.throws(() => parseCorpusLine("{oops", 1), /not JSON/);
  });

  it("gives the byte offset after every line, so a read can resume at any of them (plain and gzip)", async () => {
    const text = "first\n\nsecond ü\r\nthird";
    const plain = join(dir, "lines.jsonl");
    writeFileSync(plain, text);
    writeFileSync(`${plain}.gz`, gzipSync(text));
    for (const path of [plain, `${plain}.gz`]) {
      const lines = [];
      for await (const line of readCorpusLines(path)) lines.push(line);
      assert.deepEqual(
        lines.map((line) => [line.text, line.lineNumber]),
        [
          ["first", 1],
          ["second ü", 3],
          ["third", 4],
        ],
      );
      const resumed = [];
      const second = lines[1];
      assert.ok(second);
      for await (const line of readCorpusLines(path, { startOffset: second.endOffset, linesBefore: second.lineNumber }))
        resumed.push([line.text, line.lineNumber]);
      assert.deepEqual(resumed, [["third", 4]]);
    }
  });
});

describe("disk index (SQLite FTS5)", () => {
  let samplePath: string;
  let index: DiskTextIndex;
  before(async () => {
    const corpus = join(dir, "sample.jsonl");
    writeFileSync(corpus, jsonl(sampleCorpus()));
    samplePath = join(dir, "sample.sqlite");
    await buildIndex({ source: corpus, index: samplePath, batchSize: 50 });
    index = new DiskTextIndex(samplePath);
  });
  after(() => index.close());

  it("answers common questions from the built-in sample with the page about them first", () => {
    const cases: Array<[string, string]> = [
      ["Albert Einstein", "Albert Einstein"],
      ["who wrote Romeo and Juliet", "William Shakespeare"],
      ["when did World War II end", "World War II"],
      ["capital of France", "Paris, capital of France"],
      ["first man to walk on the Moon", "Neil Armstrong"],
      ["Einstein's theories", "Albert Einstein"],
      ["deepest freshwater lake", "Lake Baikal"],
    ];
    for (const [query, title] of cases) assert.equal(index.search(query, 5)[0]?.title, title, query);
    assert.equal(index.size, sampleCorpus().length);
  });

  it("returns the whole passage, a snippet, the url and decreasing scores", () => {
    const results = index.search("river delta sea", 5);
    assert.equal(results.length, 5);
    for (let i = 1; i < results.length; i += 1) assert.ok((results[i - 1]?.score ?? 0) >= (results[i]?.score ?? 0));
    for (const result of results) {
      assert.match(result.url, /^https:\/\/corpus\.toolplane\.invalid\//);
      assert.ok(result.text && result.text.length > 0);
      assert.ok(result.snippet.length > 0 && result.snippet.length <= 301);
      assert.ok(result.score > 0);
    }
  });

  it("model text never reaches FTS5 query syntax: operators, quotes and stars are plain words", () => {
    for (const query of ['" OR * NEAR(', "title:Paris AND -x", "^^^ (((", 'a"b"c', "NOT", "\u0000"])
      assert.doesNotThrow(() => index.search(query, 5), query);
    assert.deepEqual(index.search("the of and", 5), []);
    assert.deepEqual(index.search("xylophonequark", 5), []);
    assert.equal(matchAny(queryTerms('say "hi" OR')), '"say" OR "hi"');
  });

  it("the pruned ranking is the exact BM25 ranking of the terms ORed, common terms included", async () => {
    // Words 0-2 are in nearly every document, 3-9 in many, the rest rare: the pruning leaves the common ones out
    // of the candidates, and must still give what ranking every match gives.
    const words = Array.from({ length: 60 }, (_, i) => `w${i}x`);
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = () => words[Math.min(words.length - 1, Math.floor(1 / (next() + 0.016)) - 1)] as string;
    const rows = Array.from({ length: 3_000 }, (_, i) => ({
      title: `${pick()} ${pick()}`,
      url: `https://x.test/${i}`,
      text: Array.from({ length: 8 + Math.floor(next() * 30) }, pick).join(" "),
    }));
    const source = join(dir, "zipf.jsonl");
    writeFileSync(source, jsonl(rows));
    const path = join(dir, "zipf.sqlite");
    await buildIndex({ source, index: path });
    const pruned = new DiskTextIndex(path);
    const db = new Database(path, { readonly: true });
    const exact = db.prepare<[string, number], { url: string }>(
      "SELECT d.url FROM fts JOIN docs AS d ON d.id = fts.rowid WHERE fts MATCH ? ORDER BY bm25(fts, 2.0, 1.0) LIMIT ?",
    );
    try {
      const queries = ["w0x w1x", "w0x w30x", "w1x w2x w45x", "w5x w20x w59x", "w0x w1x w2x", "w12x", "w3x w40x"];
      for (const query of queries)
        assert.deepEqual(
          pruned.search(query, 10).map((result) => result.url),
          exact.all(matchAny(queryTerms(query)), 10).map((row) => row.url),
          query,
        );
    } finally {
      db.close();
      await pruned.close();
    }
  });

  it("is opened read-only: searching never changes the file", () => {
    const digest = () => createHash("sha256").update(readFileSync(samplePath)).digest("hex");
    const before_ = digest();
    const second = new DiskTextIndex(samplePath);
    second.search("Paris", 5);
    index.search("Einstein", 5);
    void second.close();
    assert.equal(digest(), before_);
  });

  it("the service's reader threads answer exactly what the index answers, concurrently", async () => {
    const pool = new DiskIndexPool(samplePath, 2);
    try {
      assert.equal(pool.size, index.size);
      const queries = ["Albert Einstein", "capital of France", "river delta sea", "the of and", "Otsu threshold"];
      const answers = await Promise.all(queries.map((query) => pool.search(query, 5)));
      assert.deepEqual(
        answers,
        queries.map((query) => index.search(query, 5)),
      );
    } finally {
      await pool.close();
    }
    await assert.rejects(pool.search("Paris", 3), /the disk index is closed/);
    assert.throws(() => new DiskIndexPool(join(dir, "missing.sqlite"), 2), IndexFileError);
  });

  it("builds from a gzip-compressed Search-R1 corpus", async () => {
    const rows = [
      { id: "0", contents: joinContents("Evan Morris", "Evan L. Morris was a lobbyist for Genentech.") },
      { id: "1", contents: joinContents("Horatio Hale", "Hale was an ethnologist on the Wilkes expedition.") },
    ];
    const source = join(dir, "wiki.jsonl.gz");
    writeFileSync(source, gzipSync(jsonl(rows)));
    const path = join(dir, "wiki.sqlite");
    const summary = await buildIndex({ source, index: path });
    assert.equal(summary.documents, 2);
    const wiki = new DiskTextIndex(path);
    const [hit] = wiki.search("ethnologist expedition", 3);
    assert.equal(hit?.title, "Horatio Hale");
    assert.equal(hit?.url, "corpus:1");
    assert.equal(hit?.text, "Hale was an ethnologist on the Wilkes expedition.");
    await wiki.close();
  });

  it("resumes an interrupted build from its last committed batch, without duplicates", async () => {
    const rows = Array.from({ length: 250 }, (_, i) => ({ title: `Doc ${i}`, url: `u:${i}`, text: `word${i} shared` }));
    const source = join(dir, "resume.jsonl");
    writeFileSync(source, jsonl(rows));
    const path = join(dir, "resume.sqlite");
    let batches = 0;
    await assert.rejects(
      buildIndex({
        source,
        index: path,
        batchSize: 100,
        onProgress: () => {
          batches += 1;
          if (batches === 2) throw new Error("killed");
        },
      }),
      /killed/,
    );
    assert.throws(
      () => new DiskTextIndex(path),
      (error: Error) => {
        assert.ok(error instanceof IndexFileError);
        assert.match(error.message, /not finished \(200 documents so far\): run the build again to resume/);
        return true;
      },
    );
    const summary = await buildIndex({ source, index: path, batchSize: 100 });
    assert.deepEqual(summary, { documents: 250, resumedFrom: 200, alreadyComplete: false });
    const resumed = new DiskTextIndex(path);
    assert.equal(resumed.size, 250);
    assert.equal(resumed.search("word7", 10).length, 1);
    assert.equal(resumed.search("word249", 10)[0]?.title, "Doc 249");
    await resumed.close();
    assert.equal((await buildIndex({ source, index: path })).alreadyComplete, true);
  });

  it("refuses to resume from another corpus, and names the file and line of a bad line", async () => {
    const path = join(dir, "resume.sqlite");
    const other = join(dir, "other.jsonl");
    writeFileSync(other, jsonl([{ title: "X", url: "x", text: "y" }]));
    await assert.rejects(buildIndex({ source: other, index: path }), /started from another corpus file/);
    const bad = join(dir, "bad.jsonl");
    writeFileSync(bad, `${JSON.stringify({ title: "A", url: "a", text: "t" })}\n{"title":"B"}\n`);
    await assert.rejects(
      buildIndex({ source: bad, index: join(dir, "bad.sqlite") }),
      /bad\.jsonl:2: .*needs a non-empty text/,
    );
  });

  it("refuses a file that is not an index, with the path in the message", () => {
    const junk = join(dir, "junk.sqlite");
    writeFileSync(junk, "not a database at all, just text".repeat(100));
    assert.throws(() => new DiskTextIndex(junk), /junk\.sqlite/);
    assert.throws(() => new DiskTextIndex(join(dir, "missing.sqlite")), /cannot open .*missing\.sqlite/);
  });
});
