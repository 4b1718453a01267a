import { readdirSync, readFileSync } from "node:fs";

/** Every descendant pid of `root`, from /proc. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // The process ended while we looked.
    }
  }
  const found: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    for (const child of children.get(stack.pop() as number) ?? []) {
      found.push(child);
      stack.push(child);
    }
  }
  return found;
}

/** Resident memory (kB) of one process, 0 once it is gone. */
export function rssKb(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Resident memory (kB) of a process and all its descendants (a code service with its sandboxes). */
export function treeRssKb(root: number): number {
  return [root, ...descendants(root)].reduce((total, pid) => total + rssKb(pid), 0);
}

/**
 * CPU seconds used so far by a process tree: its live processes' own time plus what the root collected from
 * children it reaped (a code service's finished sandboxes). Differences of two readings give the CPU a phase cost.
 */
export function treeCpuSeconds(root: number): number {
  const ticks = (pid: number, withChildren: boolean) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat
        .slice(stat.lastIndexOf(")") + 2)
        .split(" ")
        .map(Number);
      // utime, stime, cutime, cstime are fields 14-17 of stat: 11-14 after the command.
      const own = (fields[11] ?? 0) + (fields[12] ?? 0);
      return withChildren ? own + (fields[13] ?? 0) + (fields[14] ?? 0) : own;
    } catch {
      return 0;
    }
  };
  const total = descendants(root).reduce((sum, pid) => sum + ticks(pid, true), ticks(root, true));
  return total / CLOCK_TICKS_PER_SECOND;
}

/** USER_HZ: what /proc/<pid>/stat counts in (100 on every Linux Node runs on). */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds one process (not its children) has used so far, 0 once it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    return ((fields[11] ?? 0) + (fields[12] ?? 0)) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}
