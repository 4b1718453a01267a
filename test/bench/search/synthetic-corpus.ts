import { once } from "node:events";
import { createWriteStream } from "node:fs";
import type { CorpusDocument } from "../../../services/search/src/corpus.js";
import { joinContents } from "../../../services/search/src/corpus.js";

/**
 * Pseudo-words from syllables drawn with a Zipf law (rank r has weight 1/r, like natural text: a few very
 * common terms, a long tail), shaped like Search-R1's wiki-18 passages: a 1-4 word title and 100 words of text.
 */
export class SyntheticCorpus {
  readonly vocabulary: string[] = [];
  private readonly cumulative: Float64Array;
  private readonly total: number;

  constructor(
    private readonly next: () => number,
    vocabularySize = 100_000,
  ) {
    const syllables = "ka ri to me sa lu no vi de pa fo gu be zi mo ta ne ro si la".split(" ");
    const seen = new Set<string>();
    while (this.vocabulary.length < vocabularySize) {
      const length = 2 + Math.floor(next() * 4);
      let word = "";
      for (let i = 0; i < length; i += 1) word += syllables[Math.floor(next() * syllables.length)];
      if (!seen.has(word)) {
        seen.add(word);
        this.vocabulary.push(word);
      }
    }
    this.cumulative = new Float64Array(vocabularySize);
    let total = 0;
    for (let rank = 1; rank <= vocabularySize; rank += 1) {
      total += 1 / rank;
      this.cumulative[rank - 1] = total;
    }
    this.total = total;
  }

  word(): string {
    const target = this.next() * this.total;
    let low = 0;
    let high = this.cumulative.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if ((this.cumulative[mid] ?? 0) < target) low = mid + 1;
      else high = mid;
    }
    return this.vocabulary[low] as string;
  }

  words(count: number): string {
    const out: string[] = [];
    for (let i = 0; i < count; i += 1) out.push(this.word());
    return out.join(" ");
  }

  document(id: number): CorpusDocument {
    return {
      title: this.words(1 + Math.floor(this.next() * 4)),
      url: `https://bench.toolplane.invalid/${id}`,
      text: this.words(90 + Math.floor(this.next() * 21)),
      date: "2026-01-01",
    };
  }

  /** Queries of 2-3 terms from ranks 50..5000: neither stop-word-like nor absent. */
  queries(count: number): string[] {
    return Array.from({ length: count }, () =>
      Array.from(
        { length: 2 + Math.floor(this.next() * 2) },
        () => this.vocabulary[50 + Math.floor(this.next() * 4950)],
      ).join(" "),
    );
  }

  /**
   * Writes Search-R1 lines ({"id", "contents"}), streaming: each output gets the first `documents` of one
   * sequence, so a smaller corpus is a prefix of the larger (two points of one growth curve).
   */
  async writeSearchR1(outputs: Array<{ path: string; documents: number }>): Promise<void> {
    const streams = outputs.map((output) => ({ ...output, stream: createWriteStream(output.path) }));
    const total = Math.max(...outputs.map((output) => output.documents));
    for (let id = 0; id < total; id += 1) {
      const doc = this.document(id);
      const line = `${JSON.stringify({ id: String(id), contents: joinContents(doc.title, doc.text) })}\n`;
      for (const output of streams)
        if (id < output.documents && !output.stream.write(line)) await once(output.stream, "drain");
    }
    for (const output of streams) {
      output.stream.end();
      await once(output.stream, "finish");
    }
  }
}
