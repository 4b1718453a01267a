/** Percentiles and the one-line format every figure of the search benchmark is printed in. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export const fmt = (ms: number): string => `${ms.toFixed(3)} ms`;
export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

export function report(name: string, samples: number[]): { p50: number; p99: number } {
  const p50 = percentile(samples, 50);
  const p99 = percentile(samples, 99);
  process.stdout.write(
    `${name.padEnd(44)} n=${String(samples.length).padStart(5)}  p50 ${fmt(p50)}  p99 ${fmt(p99)}\n`,
  );
  return { p50, p99 };
}
