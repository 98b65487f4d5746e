/**
 * Reading the arguments of `client.query`, for the wrapper that patches it (the connection's
 * statements, internal/statement/connection.ts): pg takes a text, a config object or a
 * submittable (cursor, stream), and a trailing callback or none (then it returns a promise).
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
 * Calls `send` with the statement's callback, whichever form the caller used: `(config, callback)`,
 * `(config, values, callback)`, or no callback — then the promise is made here, settled by that
 * callback, so that every statement reaches `send` with one callback (a promise made by pg could
 * not be settled from outside).
 */
export const withCallback = (
  config: unknown,
  values: unknown,
  callback: unknown,
  send: (config: unknown, values: unknown, callback: QueryCallback) => void
): Promise<unknown> | undefined => {
  // `(config, undefined, callback)` is what pg makes of `(config, callback)`
  if (typeof callback === "function") send(config, values, callback as QueryCallback)
  else if (typeof values === "function") send(config, undefined, values as QueryCallback)
  else {
    return new Promise((resolve, reject) => {
      send(config, values, (err, result) => (err ? reject(err) : resolve(result)))
    })
  }
  return undefined
}
