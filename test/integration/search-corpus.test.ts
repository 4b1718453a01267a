import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { SearchRequest, SearchServiceClient } from "../../generated/toolplane/search/v1/search.js";
import { createClient, invoke } from "../../services/runtime/src/index.js";
import { joinContents } from "../../services/search/src/corpus.js";
import { sampleCorpus } from "../../services/search/src/sample-corpus.js";
import { distRoot, type Finished, type SpawnedService, spawnService } from "../support/processes.js";

const CLI = join(distRoot, "services", "search", "src", "cli", "build-index.js");

function runBuild(args: string[]): { finished: Promise<Finished>; kill: () => void } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return {
    finished: new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr }))),
    kill: () => child.kill("SIGKILL"),
  };
}

/** Documents committed so far, read the way a second process would while the build runs. */
function committedDocuments(path: string): number {
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      const row = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'documents'").get();
      return Number(row?.value ?? 0);
    } finally {
      db.close();
    }
  } catch {
    return 0;
  }
}

const retrieveAddress = (service: SpawnedService): string => {
  const line = service.output.find((entry) => entry.includes('"msg":"retrieve endpoint listening"'));
  assert.ok(line, `no retrieve endpoint in:\n${service.output.join("\n")}`);
  return (JSON.parse(line) as { address: string }).address;
};

/** verl's _passages2string (verl/tools/utils/search_r1_like_utils.py at b178a3cd), as the model would see it. */
function verlPassages(result: Array<{ document: { contents: string } }>): string {
  let formatted = "";
  result.forEach((item, index) => {
    const lines = item.document.contents.split("\n");
    formatted += `Doc ${index + 1} (Title: ${lines[0]})\n${lines.slice(1).join("\n")}\n\n`;
  });
  return formatted.trim();
}

describe("a real corpus: build-index CLI, replicas sharing the index, the retrieval protocol both ways", () => {
  let dir: string;
  let indexPath: string;
  const replicas: SpawnedService[] = [];
  let viaRetrieval: SpawnedService | undefined;
  let retrieveUrl: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "search-corpus-it-"));
    // The sample as a Search-R1 corpus ({id, contents}), the format of wiki-18.
    const source = join(dir, "wiki.jsonl");
    writeFileSync(
      source,
      sampleCorpus()
        .map((doc, id) => JSON.stringify({ id: String(id), contents: joinContents(doc.title, doc.text) }))
        .join("\n"),
    );
    indexPath = join(dir, "wiki.sqlite");
    const built = await runBuild([source, indexPath]).finished;
    assert.equal(built.code, 0, built.stderr);
    assert.match(built.stdout, new RegExp(`indexed ${sampleCorpus().length} documents into .*peak RSS`));
    const env = { TOOLPLANE_SEARCH_INDEX: indexPath };
    replicas.push(await spawnService("search", { ...env, TOOLPLANE_SEARCH_RETRIEVE_PORT: "0" }));
    replicas.push(await spawnService("search", env));
    retrieveUrl = `http://${retrieveAddress(replicas[0] as SpawnedService)}/retrieve`;
  });
  after(async () => {
    await viaRetrieval?.stop();
    for (const replica of replicas) await replica.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the CLI says an index is complete when run again, and refuses bad usage with exit 2", async () => {
    const again = await runBuild([join(dir, "wiki.jsonl"), indexPath]).finished;
    assert.equal(again.code, 0);
    assert.match(again.stdout, /already complete: \d+ documents/);
    const usage = await runBuild([]).finished;
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage: build-index/);
  });

  it("two replicas open the same index file read-only and answer the same", async () => {
    const answers = [];
    for (const replica of replicas) {
      const client = createClient(SearchServiceClient, replica.address);
      try {
        answers.push(
          await invoke(client, client.search, SearchRequest.fromPartial({ query: "Albert Einstein", topK: 3 })),
        );
      } finally {
        client.close();
      }
    }
    assert.equal(answers[0]?.results[0]?.title, "Albert Einstein");
    assert.match(answers[0]?.results[0]?.url ?? "", /^corpus:\d+$/);
    assert.deepEqual(answers[1]?.results, answers[0]?.results);
  });

  it("POST /retrieve answers Search-R1's shape, which verl's formatter reads", async () => {
    const response = await fetch(retrieveUrl, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({
        queries: ["Albert Einstein physicist", "who wrote Romeo and Juliet"],
        topk: 3,
        return_scores: true,
      }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as {
      result: Array<Array<{ document: { id: string; contents: string; title: string }; score: number }>>;
    };
    assert.equal(body.result.length, 2);
    assert.equal(body.result[0]?.length, 3);
    const top = body.result[0]?.[0];
    assert.equal(top?.document.title, "Albert Einstein");
    assert.match(top?.document.id ?? "", /^\d+$/);
    assert.ok((top?.score ?? 0) > 0);
    assert.match(
      verlPassages(body.result[0] ?? []),
      /^Doc 1 \(Title: "Albert Einstein"\)\nAlbert Einstein \(1879–1955\)/,
    );
    assert.equal(body.result[1]?.[0]?.document.title, "William Shakespeare");

    const plain = (await (
      await fetch(retrieveUrl, { method: "POST", body: JSON.stringify({ queries: ["Lake Baikal"] }) })
    ).json()) as { result: Array<Array<{ contents: string }>> };
    // Without topk: Search-R1's default of 3; without return_scores: bare documents.
    assert.equal(plain.result[0]?.length, 3);
    assert.match(plain.result[0]?.[0]?.contents ?? "", /^"Lake Baikal"\n/);
  });

  it("bad requests: 422 naming the field like FastAPI; a caller's unknown provider is 400 INFRASTRUCTURE", async () => {
    const post = (body: unknown, query = "") =>
      fetch(`${retrieveUrl}${query}`, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) });
    let response = await post({ query: "x" });
    assert.equal(response.status, 422);
    assert.deepEqual(((await response.json()) as { detail: Array<{ loc: unknown[] }> }).detail[0]?.loc, [
      "body",
      "queries",
    ]);
    response = await post({ queries: ["fine", "y".repeat(600)] });
    assert.equal(response.status, 422);
    const detail = ((await response.json()) as { detail: Array<{ loc: unknown[]; msg: string }> }).detail[0];
    assert.deepEqual(detail?.loc, ["body", "queries", 1]);
    assert.match(detail?.msg ?? "", /query has 600 characters, over the limit of 512/);
    response = await post({ queries: ["x"], topk: 11 });
    assert.equal(response.status, 422);
    assert.deepEqual(((await response.json()) as { detail: Array<{ loc: unknown[] }> }).detail[0]?.loc, [
      "body",
      "topk",
    ]);
    response = await post("{not json");
    assert.equal(response.status, 422);
    response = await post({ queries: ["x"] }, "?provider=nope");
    assert.equal(response.status, 400);
    assert.equal(response.headers.get("toolplane-error-class"), "INFRASTRUCTURE");
    assert.match(((await response.json()) as { detail: string }).detail, /provider "nope" is unknown/);
    response = await fetch(retrieveUrl);
    assert.equal(response.status, 405);
  });

  it("checks every field like Search-R1's QueryRequest, each error naming the field and the limit", async () => {
    const details = async (body: unknown) => {
      const response = await fetch(retrieveUrl, { method: "POST", body: JSON.stringify(body) });
      assert.equal(response.status, 422, JSON.stringify(body));
      return ((await response.json()) as { detail: Array<{ loc: unknown[]; msg: string }> }).detail.map((detail) => [
        detail.loc.join("."),
        detail.msg,
      ]);
    };
    assert.deepEqual(await details([]), [["body", "the body must be a JSON object {queries, topk, return_scores}"]]);
    assert.deepEqual(await details({ queries: "capital of France" }), [
      ["body.queries", 'queries must be a list of strings; got "capital of France"'],
    ]);
    assert.deepEqual(await details({ queries: ["ok", 7] }), [["body.queries.1", "each query must be a string"]]);
    assert.deepEqual(await details({ queries: Array(65).fill("x") }), [
      ["body.queries", "queries has 65 queries, over the limit of 64"],
    ]);
    assert.deepEqual(await details({ queries: ["x"], topk: -1 }), [
      ["body.topk", "topk must be between 1 and 10 (null or 0 means 3); got -1"],
    ]);
    assert.deepEqual(await details({ queries: ["x"], topk: 2.5 }), [
      ["body.topk", "topk must be an integer or null; got 2.5"],
    ]);
    assert.deepEqual(await details({ queries: ["x"], return_scores: "yes" }), [
      ["body.return_scores", 'return_scores must be true or false; got "yes"'],
    ]);
    const empty = await fetch(retrieveUrl, { method: "POST", body: JSON.stringify({ queries: [], topk: null }) });
    assert.equal(empty.status, 200);
    assert.deepEqual(await empty.json(), { result: [] });
    const huge = await fetch(retrieveUrl, { method: "POST", body: "x".repeat(1024 * 1024 + 1) });
    assert.equal(huge.status, 413);
    assert.match(((await huge.json()) as { detail: string }).detail, /the limit is 1048576/);
  });

  it("the retrieval provider calls a Search-R1 server (here toolplane's own endpoint)", async () => {
    viaRetrieval = await spawnService("search", {
      TOOLPLANE_SEARCH_RETRIEVAL_URL: retrieveUrl.replace(/\/retrieve$/, ""),
      TOOLPLANE_SEARCH_DEFAULT_PROVIDER: "retrieval",
    });
    const client = createClient(SearchServiceClient, viaRetrieval.address);
    try {
      const answer = await invoke(
        client,
        client.search,
        SearchRequest.fromPartial({ query: "Albert Einstein", topK: 2 }),
      );
      assert.equal(answer.provider, "retrieval");
      assert.equal(answer.results[0]?.title, "Albert Einstein");
      assert.match(answer.results[0]?.snippet ?? "", /theoretical physicist/);
    } finally {
      client.close();
    }
  });

  it("a service refuses to start on an unfinished index or on an index and a corpus both set", async () => {
    await assert.rejects(
      spawnService("search", { TOOLPLANE_SEARCH_INDEX: indexPath, TOOLPLANE_SEARCH_CORPUS: join(dir, "wiki.jsonl") }),
      /TOOLPLANE_SEARCH_INDEX and TOOLPLANE_SEARCH_CORPUS are both set/,
    );
    await assert.rejects(
      spawnService("search", { TOOLPLANE_SEARCH_INDEX: join(dir, "absent.sqlite") }),
      /TOOLPLANE_SEARCH_INDEX: cannot open .*absent\.sqlite/,
    );
  });

  it("a build killed part way (SIGKILL) resumes from its last committed batch to the same index", async () => {
    const source = join(dir, "big.jsonl");
    const out = createWriteStream(source);
    const total = 40_000;
    for (let id = 0; id < total; id += 1)
      if (
        !out.write(
          `${JSON.stringify({ title: `Passage ${id}`, url: `u:${id}`, text: `term${id % 997} body${id} filler words here` })}\n`,
        )
      )
        await once(out, "drain");
    out.end();
    await once(out, "finish");
    const path = join(dir, "big.sqlite");
    const first = runBuild([source, path]);
    const deadline = Date.now() + 60_000;
    while (committedDocuments(path) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    first.kill();
    const killed = await first.finished;
    const committed = committedDocuments(path);
    assert.ok(committed > 0 && committed < total, `killed after ${committed} documents (exit ${killed.code})`);
    const resumed = await runBuild([source, path]).finished;
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, new RegExp(`indexed ${total} documents \\(resumed after ${committed}\\)`));
    const db = new Database(path, { readonly: true });
    try {
      assert.equal(db.prepare<[], { n: number }>("SELECT count(*) AS n FROM docs").get()?.n, total);
      assert.equal(db.prepare<[], { n: number }>("SELECT count(DISTINCT url) AS n FROM docs").get()?.n, total);
    } finally {
      db.close();
    }
  });
});
