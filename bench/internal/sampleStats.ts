/**
 * What one timed sample of a throughput bench measured, and how samples of several rounds are
 * summarised: queries per second, latency percentiles, and client CPU per query
 * (`process.cpuUsage` over the sample divided by the queries it completed).
 */
import { median } from "./median.js"

/** One contender's sample of one round. */
export interface Sample {
  readonly qps: number
  readonly p50Millis: number
  readonly p99Millis: number
  /** client CPU (user + system) per completed query, µs; undefined for an outside process */
  readonly cpuMicrosPerQuery: number | undefined
}

/** The `q`-quantile (0..1) of latencies in milliseconds (nearest rank); 0 for none. */
export const quantile = (latencies: ReadonlyArray<number>, q: number): number => {
  if (latencies.length === 0) return 0
  const sorted = Float64Array.from(latencies).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0
}

/** A sample from the raw measurements of one run. */
export const sampleOf = (
  count: number,
  millis: number,
  latencies: ReadonlyArray<number>,
  cpu: NodeJS.CpuUsage | undefined
): Sample => ({
  qps: count / (millis / 1000),
  p50Millis: quantile(latencies, 0.5),
  p99Millis: quantile(latencies, 0.99),
  cpuMicrosPerQuery: cpu === undefined || count === 0 ? undefined : (cpu.user + cpu.system) / count
})

/** `median [min–max]` of per-round ratios, two decimals. */
export const spread = (ratios: ReadonlyArray<number>): string =>
  ratios.length === 0
    ? "-"
    : `${median(ratios).toFixed(2)} [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`
