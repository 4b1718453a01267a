import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";
import { z } from "zod";
import { errorMessage } from "../../runtime/src/error-message.js";

/**
 * One corpus document, as every index stores it. Two line formats are read:
 *   - toolplane: {"title", "url", "text" and/or "snippet", "date"?}
 *   - Search-R1 / FlashRAG (wiki-18): {"id", "contents": "\"Title\"\nPassage text"}, or {"id", "title", "text"}.
 * `text` is indexed and returned whole by the retrieval endpoint; `snippet` is shown (default: the first
 * SNIPPET_CHARS of `text`). Documents without a url get `corpus:<id>` (or `corpus:<line>`).
 */
export interface CorpusDocument {
  title: string;
  url: string;
  text: string;
  snippet?: string;
  date?: string;
}

export const SNIPPET_CHARS = 300;

export function snippetOf(document: { text: string; snippet?: string | null }): string {
  if (document.snippet) return document.snippet;
  const text = document.text;
  return text.length > SNIPPET_CHARS ? `${text.slice(0, SNIPPET_CHARS)}…` : text;
}

const optionalText = z.string().optional();
const lineShape = z
  .object({
    id: z.union([z.string(), z.number()]).optional(),
    title: optionalText,
    url: optionalText,
    text: optionalText,
    snippet: optionalText,
    contents: optionalText,
    date: optionalText,
  })
  .refine((line) => Boolean(line.title || line.contents), { message: "needs a title (or Search-R1 contents)" })
  .refine((line) => Boolean(line.text || line.snippet || line.contents), {
    message: "needs a non-empty text or snippet (or Search-R1 contents)",
  });

/**
 * Search-R1's BM25 retriever reads a passage's title as the first line of `contents` with its quotes
 * stripped, and the text as the remaining lines (search_r1/search/retrieval_server.py).
 */
export function splitContents(contents: string): { title: string; text: string } {
  const newline = contents.indexOf("\n");
  const first = newline === -1 ? contents : contents.slice(0, newline);
  return { title: first.trim().replace(/^"+|"+$/g, ""), text: newline === -1 ? "" : contents.slice(newline + 1) };
}

/** Search-R1's `contents`: the quoted title on the first line, the passage after it. */
export const joinContents = (title: string, text: string): string => `"${title}"\n${text}`;

/** Parses one JSONL line; throws an Error saying what is wrong (the caller adds file:line). */
export function parseCorpusLine(line: string, lineNumber: number): CorpusDocument {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new Error(`not JSON (${errorMessage(error)})`);
  }
  const parsed = lineShape.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${issue?.path.join(".") || "document"} ${issue?.message}`);
  }
  const fields = parsed.data;
  const split = fields.contents ? splitContents(fields.contents) : undefined;
  const title = fields.title || split?.title || "";
  const text = fields.text || split?.text || fields.snippet || "";
  const url = fields.url || `corpus:${fields.id ?? lineNumber}`;
  return {
    title,
    url,
    text,
    ...(fields.snippet ? { snippet: fields.snippet } : {}),
    ...(fields.date ? { date: fields.date } : {}),
  };
}

export interface CorpusLine {
  text: string;
  /** 1-based line number in the (decompressed) file. */
  lineNumber: number;
  /** Offset just past this line's newline, in decompressed bytes: where a resumed read starts. */
  endOffset: number;
}

export interface CorpusReadOptions {
  /** Decompressed byte offset to start at (the start of a line). */
  startOffset?: number;
  /** Line number of the line at startOffset, minus one. */
  linesBefore?: number;
  /** Called with the bytes read from the file itself (compressed bytes for .gz). */
  onFileBytes?: (bytes: number) => void;
}

const NEWLINE = 0x0a;

/**
 * Streams the non-blank lines of a JSONL file (`.gz` is decompressed on the fly) with the byte offset
 * after each, in flat memory whatever the file size.
 */
export async function* readCorpusLines(path: string, options: CorpusReadOptions = {}): AsyncGenerator<CorpusLine> {
  const startOffset = options.startOffset ?? 0;
  const gzip = path.endsWith(".gz");
  const file = createReadStream(path, gzip ? {} : { start: startOffset });
  if (options.onFileBytes) file.on("data", () => options.onFileBytes?.(file.bytesRead));
  const source: AsyncIterable<Buffer> = gzip ? file.pipe(createGunzip()) : file;
  // A compressed file cannot be entered in the middle: decompress and drop the part already indexed.
  let skip = gzip ? startOffset : 0;
  let offset = startOffset;
  let lineNumber = options.linesBefore ?? 0;
  let pending: Buffer[] = [];
  try {
    for await (let chunk of source) {
      if (skip > 0) {
        const dropped = Math.min(skip, chunk.length);
        skip -= dropped;
        chunk = chunk.subarray(dropped);
      }
      let from = 0;
      for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, from)) {
        const piece = chunk.subarray(from, at);
        const bytes = pending.length > 0 ? Buffer.concat([...pending, piece]) : piece;
        pending = [];
        offset += bytes.length + 1;
        lineNumber += 1;
        from = at + 1;
        const text = bytes.toString("utf8").trim();
        if (text !== "") yield { text, lineNumber, endOffset: offset };
      }
      if (from < chunk.length) pending.push(chunk.subarray(from));
    }
    const rest = Buffer.concat(pending);
    if (rest.length > 0) {
      offset += rest.length;
      lineNumber += 1;
      const text = rest.toString("utf8").trim();
      if (text !== "") yield { text, lineNumber, endOffset: offset };
    }
  } finally {
    file.destroy();
  }
}

/** Reads a whole JSONL corpus into memory (the in-memory index); a bad line fails with its file and line. */
export async function readCorpus(path: string): Promise<CorpusDocument[]> {
  const documents: CorpusDocument[] = [];
  for await (const line of readCorpusLines(path)) {
    try {
      documents.push(parseCorpusLine(line.text, line.lineNumber));
    } catch (error) {
      throw new Error(`${path}:${line.lineNumber}: ${errorMessage(error)}`);
    }
  }
  return documents;
}
