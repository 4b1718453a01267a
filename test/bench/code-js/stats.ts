export interface Figures {
  p50: number;
  p99: number;
}

export function percentiles(samples: number[]): Figures {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99) };
}

/**
 * One warm-up call, then `iterations` timed calls in sequence (latency, not
 * throughput). A call may return an untimed clean-up function (closing a
 * session), run before the next call.
 */
export async function measure(iterations: number, once: () => Promise<unknown>): Promise<Figures> {
  const cleanUpAfter = async (result: unknown) => {
    if (typeof result === "function") await (result as () => Promise<unknown>)();
  };
  await cleanUpAfter(await once());
  const samples: number[] = [];
  for (let index = 0; index < iterations; index++) {
    const started = performance.now();
    const result = await once();
    samples.push(performance.now() - started);
    await cleanUpAfter(result);
  }
  return percentiles(samples);
}
