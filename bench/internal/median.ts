/**
 * The median of a benchmark's samples (the mean of the middle two for an even count, 0 for none):
 * every bench reports the median of its rounds so that one noisy round does not move the figure.
 */
export const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}
