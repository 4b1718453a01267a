import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryWatch } from "./memory-watch.js";

const MIB = 1024 * 1024;

describe("MemoryWatch", () => {
  it("names a lone cell whose host grew past its limit plus slack, once", () => {
    let rss = 100 * MIB;
    const judged: string[] = [];
    const watch = new MemoryWatch(
      (sessionId, grownMb, limitMb) => judged.push(`${sessionId} ${grownMb} ${limitMb}`),
      () => rss,
    );
    watch.begin("a", 128);
    rss += 150 * MIB;
    watch.check();
    assert.deepEqual(judged, [], "within limit + slack");
    rss += 100 * MIB;
    watch.check();
    watch.check();
    assert.deepEqual(judged, ["a 250 128"]);
    watch.end("a");
  });

  it("does not judge cells that overlapped another (the growth cannot be attributed)", () => {
    let rss = 100 * MIB;
    const judged: string[] = [];
    const watch = new MemoryWatch(
      (sessionId) => judged.push(sessionId),
      () => rss,
    );
    watch.begin("a", 64);
    watch.begin("b", 64);
    rss += 1024 * MIB;
    watch.check();
    watch.end("b");
    watch.check();
    assert.deepEqual(judged, []);
    watch.end("a");
    watch.begin("c", 64);
    rss += 200 * MIB;
    watch.check();
    assert.deepEqual(judged, ["c"]);
  });
});
