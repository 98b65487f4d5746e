/**
 * Collecting the log lines an effect writes, instead of printing them: `doctor` reports the
 * policy's warnings and the connection's posture warnings as findings, from the very log calls
 * the library makes at startup (annotated with `rule`, `variable`, `alert`).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"

/** @internal */
export interface CapturedLog {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, string>>
}

/** @internal */
export interface Captured<A, E> {
  readonly result: Either.Either<A, E>
  readonly logs: ReadonlyArray<CapturedLog>
}

const text = (message: unknown): string =>
  Array.isArray(message) ? message.map((part) => String(part)).join(" ") : String(message)

/**
 * Runs `effect` with every logger replaced by one that records each line, and returns its
 * result (success or failure) with what it logged. Fibers it forks keep recording into a buffer
 * nobody reads, so they print nothing either.
 *
 * @internal
 */
export const capture = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Captured<A, E>, never, R> =>
  Effect.suspend(() => {
    const logs: Array<CapturedLog> = []
    const logger = Logger.make(({ annotations, logLevel, message }) => {
      const record: Record<string, string> = {}
      for (const [key, value] of HashMap.toEntries(annotations)) record[key] = String(value)
      logs.push({ level: logLevel.label, message: text(message), annotations: record })
    })
    return effect.pipe(
      Effect.either,
      Effect.locally(FiberRef.currentLoggers, HashSet.make(logger)),
      Effect.map((result) => ({ result, logs: logs.slice() }))
    )
  })
