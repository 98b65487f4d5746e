/**
 * Reading the arguments of `client.query`, for the wrappers that patch it (the monitor's timing,
 * the statement-timeout typing): pg takes a text, a config object or a submittable (cursor,
 * stream), and a trailing callback or none (then it returns a promise).
 *
 * @internal
 */

/** The text of a `client.query` first argument, whatever form it took (text or config object). */
export const statementText = (first: unknown): string | undefined => {
  if (typeof first === "string") return first
  if (typeof first === "object" && first !== null && "text" in first && typeof first.text === "string") {
    return first.text
  }
  return undefined
}

/** A cursor or stream: pg hands it the connection and returns it, with no callback or promise. */
export const isSubmittable = (first: unknown): boolean =>
  typeof first === "object" && first !== null && "submit" in first && typeof first.submit === "function"

export const isThenable = (u: unknown): u is PromiseLike<unknown> =>
  typeof u === "object" && u !== null && "then" in u && typeof u.then === "function"
