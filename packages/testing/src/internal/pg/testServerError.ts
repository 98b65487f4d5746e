/**
 * @internal
 */
import * as Schema from "effect/Schema"

/**
 * A PostgreSQL test server could not be found, created, started, configured or stopped.
 * `operation` names the step; `message` says what happened and how to fix it (and, for start
 * failures, carries the tail of the server log).
 *
 * @since 0.1.0
 * @category errors
 */
export class PgTestServerError extends Schema.TaggedError<PgTestServerError>()("PgTestServerError", {
  operation: Schema.String,
  message: Schema.String
}) {}

/** @internal */
export const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = "code" in cause && typeof cause.code === "string" ? ` [${cause.code}]` : ""
    return `${cause.message}${code}`
  }
  return String(cause)
}

/** @internal */
export const failure = (operation: string, message: string): PgTestServerError =>
  new PgTestServerError({ operation, message: `PgTestServer ${operation}: ${message}` })
