/**
 * Connection-pool sizing: the per-environment presets from the requirements and the formula
 * `max_pool_size = (available_db_connections / number_of_app_instances) * headroom`.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type { Environment, PoolSettings } from "./DbSettings.js"

/**
 * Pool sizes used when `DB_POOL_MIN` / `DB_POOL_MAX` are unset (the requirements' table).
 *
 * | environment | min | max | reasoning |
 * |---|---|---|---|
 * | development | 2 | 5 | low concurrency, fast iteration |
 * | test | 1 | 3 | isolated tests, minimal overhead |
 * | staging | 5 | 20 | production-like load testing |
 * | production | 10 | 50 | high concurrency, auto-scaling |
 *
 * @since 0.1.0
 * @category constants
 */
export const presets: { readonly [E in Environment]: PoolSettings } = {
  development: { min: 2, max: 5 },
  test: { min: 1, max: 3 },
  staging: { min: 5, max: 20 },
  production: { min: 10, max: 50 }
}

/**
 * The preset for one environment.
 *
 * @since 0.1.0
 * @category constructors
 */
export const preset = (environment: Environment): PoolSettings => presets[environment]

/**
 * The share of the server's connections the application may use by default: 20 % stays free
 * for administration, migrations and monitoring.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultHeadroom = 0.8

/**
 * An input of {@link maxPoolSize} is out of range.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidPoolSizing extends Schema.TaggedError<InvalidPoolSizing>()("InvalidPoolSizing", {
  field: Schema.Literal("maxConnections", "instances", "headroom"),
  expected: Schema.String,
  message: Schema.String
}) {}

/**
 * @since 0.1.0
 * @category models
 */
export interface MaxPoolSizeInput {
  /** the server's `max_connections` available to this application */
  readonly maxConnections: number
  /** how many application instances share them */
  readonly instances: number
  /** the fraction of the connections to use, in (0, 1]; default 0.8 */
  readonly headroom?: number
}

const invalid = (
  field: InvalidPoolSizing["field"],
  expected: string,
  received: number
): Either.Either<never, InvalidPoolSizing> =>
  Either.left(
    new InvalidPoolSizing({
      field,
      expected,
      message: `Pool sizing: ${field} must be ${expected}, received ${String(received)}.`
    })
  )

/**
 * `floor(maxConnections / instances * headroom)`, at least 1: the largest `DB_POOL_MAX` each
 * instance can use without the fleet exhausting the server (200 connections, 4 instances -> 40).
 *
 * Returns an `Either` (which is also an `Effect`, so `yield*` works in `Effect.gen`); inputs that
 * make no sense (non-integers, zero or negative counts, a headroom outside (0, 1]) are an
 * `InvalidPoolSizing`, never a clamp.
 *
 * @since 0.1.0
 * @category constructors
 */
export const maxPoolSize = (input: MaxPoolSizeInput): Either.Either<number, InvalidPoolSizing> => {
  const headroom = input.headroom ?? defaultHeadroom
  if (!Number.isSafeInteger(input.maxConnections) || input.maxConnections < 1) {
    return invalid("maxConnections", "a positive integer", input.maxConnections)
  }
  if (!Number.isSafeInteger(input.instances) || input.instances < 1) {
    return invalid("instances", "a positive integer", input.instances)
  }
  if (!Number.isFinite(headroom) || headroom <= 0 || headroom > 1) {
    return invalid("headroom", "a number greater than 0 and at most 1", headroom)
  }
  // Multiply before dividing and allow for binary rounding (0.29 * 100 = 28.999999999999996)
  // so that exact results are not floored one below.
  const exact = (input.maxConnections * headroom) / input.instances
  return Either.right(Math.max(1, Math.floor(exact + 1e-9)))
}
