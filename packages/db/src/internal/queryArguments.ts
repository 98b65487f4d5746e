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

/** pg's statement callback: `(err, result)`. */
export type QueryCallback = (err: unknown, result?: unknown) => void

/** `client.query` as the wrappers capture it. */
export type QueryMethod = (this: unknown, config: unknown, values?: unknown, callback?: unknown) => unknown

/** A config object that carries its own `callback` (pg calls it; no promise is made). */
const hasOwnCallback = (config: unknown): boolean =>
  typeof config === "object" && config !== null && "callback" in config && typeof config.callback === "function"

/**
 * Whether the wrappers leave this call alone: a submittable (it has no callback of its own) or a
 * config object with its own `callback`.
 */
export const passesThrough = (config: unknown): boolean => isSubmittable(config) || hasOwnCallback(config)

/**
 * Calls `query` with the statement's callback replaced by `replace(callback)`, whichever form the
 * caller used: `(config, callback)`, `(config, values, callback)`, or no callback — then the
 * promise is made here, settled by the replaced callback, so that every statement reaches the
 * wrapper through one callback (a promise made by pg could not be settled from outside).
 */
export const callWith = (
  query: QueryMethod,
  self: unknown,
  config: unknown,
  values: unknown,
  callback: unknown,
  replace: (callback: QueryCallback) => QueryCallback
): unknown => {
  // `(config, undefined, callback)` is what pg makes of `(config, callback)`
  if (typeof callback === "function") return query.call(self, config, values, replace(callback as QueryCallback))
  if (typeof values === "function") return query.call(self, config, undefined, replace(values as QueryCallback))
  return new Promise((resolve, reject) => {
    query.call(self, config, values, replace((err, result) => (err ? reject(err) : resolve(result))))
  })
}
