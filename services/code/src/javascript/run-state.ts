import type { ToolplaneError } from "../../../runtime/src/index.js";
import type { CodeFailure, ExecutionOutcome, ResolvedLimits } from "../backend.js";

const TRUNCATION_NOTE = (stream: string, cap: number) =>
  `\n[output truncated: ${stream} exceeded the limit of ${cap} bytes]\n`;

/** Collects what one Execute produced, applying the caps as it goes. */
export class RunState {
  private readonly streams = [
    { name: "stdout", text: "", bytes: 0, truncated: false },
    { name: "stderr", text: "", bytes: 0, truncated: false },
  ];
  readonly images: Buffer[] = [];
  imagesTruncated = false;
  /** Set when a host call ran into the wall deadline: the cell failed with a timeout even if it caught it. */
  deadlineHit = false;
  /** An infrastructure failure a host call met (the image service down): the RPC fails, whatever the code did. */
  infrastructureError: ToolplaneError | undefined;
  readonly started = performance.now();

  constructor(
    readonly limits: ResolvedLimits,
    readonly deadline: number,
    readonly signal: AbortSignal,
  ) {}

  /** Appends to a stream; false once the stream is at its cap (the sandbox then stops sending). */
  write(stream: number, text: string): boolean {
    const target = this.streams[stream === 2 ? 1 : 0];
    if (target === undefined || target.truncated || typeof text !== "string") return false;
    const cap = this.limits.maxOutputBytes;
    const size = Buffer.byteLength(text);
    if (target.bytes + size <= cap) {
      target.text += text;
      target.bytes += size;
      return true;
    }
    // Cut on a byte boundary, then drop a trailing partial UTF-8 sequence.
    const kept = Buffer.from(text)
      .subarray(0, cap - target.bytes)
      .toString("utf8")
      .replace(/\uFFFD$/, "");
    target.text += kept;
    target.bytes = cap;
    target.truncated = true;
    return false;
  }

  outcome(result: string | undefined, failure: CodeFailure | undefined): ExecutionOutcome {
    const [out, err] = this.streams as [(typeof this.streams)[0], (typeof this.streams)[0]];
    const finish = (stream: typeof out) =>
      stream.truncated ? stream.text + TRUNCATION_NOTE(stream.name, this.limits.maxOutputBytes) : stream.text;
    let stderr = finish(err);
    if (failure?.traceback) stderr += `${stderr === "" || stderr.endsWith("\n") ? "" : "\n"}${failure.traceback}\n`;
    return {
      stdout: finish(out),
      stderr,
      stdoutTruncated: out.truncated,
      stderrTruncated: err.truncated,
      ...(result === undefined ? {} : { result }),
      images: this.images,
      imagesTruncated: this.imagesTruncated,
      ...(failure === undefined ? {} : { failure }),
    };
  }
}
