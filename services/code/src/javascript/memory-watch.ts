/**
 * Spots a heap bomb V8 cannot interrupt long before V8 gives up on it. A heap exhaustion inside a C++ builtin
 * (`new Array(2**30).fill(0)`) ignores isolated-vm's termination request and only ends, after ~20 s of
 * last-resort garbage collections at the default 1 GiB, in a catastrophic OOM. While a cell runs alone in its
 * host, only its isolate can grow the host's resident memory: growth past its own memory limit (plus slack)
 * means its heap is past the limit that isolated-vm could not enforce. Cells that overlapped another cell are
 * not judged here (the growth cannot be attributed); for them the catastrophic error names the culprit.
 */

const MIB = 1024 * 1024;
/** Memory a cell may add beyond its heap limit before it is judged (code, handles, allocator slack). */
const SLACK_BYTES = 64 * MIB;
const POLL_MS = 100;

interface Watched {
  startRss: number;
  limitBytes: number;
  /** Another cell ran during this one: the host's growth is not this cell's alone. */
  overlapped: boolean;
}

export class MemoryWatch {
  private readonly running = new Map<string, Watched>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly onOverLimit: (sessionId: string, grownMb: number, limitMb: number) => void,
    private readonly rss: () => number = () => process.memoryUsage.rss(),
  ) {}

  /** A cell of `sessionId` starts; `memoryMb` is its isolate's limit. */
  begin(sessionId: string, memoryMb: number): void {
    for (const other of this.running.values()) other.overlapped = true;
    this.running.set(sessionId, {
      startRss: this.rss(),
      limitBytes: memoryMb * MIB,
      overlapped: this.running.size > 0,
    });
    this.timer ??= setInterval(() => this.check(), POLL_MS);
  }

  end(sessionId: string): void {
    this.running.delete(sessionId);
    if (this.running.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** @internal One poll (exported for tests). */
  check(): void {
    if (this.running.size !== 1) return;
    const [sessionId, cell] = [...this.running][0] as [string, Watched];
    if (cell.overlapped) return;
    const grown = this.rss() - cell.startRss;
    if (grown <= cell.limitBytes + SLACK_BYTES) return;
    this.end(sessionId);
    this.onOverLimit(sessionId, Math.round(grown / MIB), Math.round(cell.limitBytes / MIB));
  }
}
