/**
 * How Takumi DB waits between attempts to reach PostgreSQL again: an exponential, jittered, capped
 * backoff, and a time budget for retries that are safe to make (opening a connection, where nothing
 * has been sent to the server yet).
 *
 * The same policy drives the health supervisor's probes of the primary and the replica, the retries
 * of connection acquisition, `Idempotent.retry`, and the optional wait for the database at startup.
 * Provide `ReconnectSchedule.layer({...})` next to `SecureSqlClient.layer` to change it; without it
 * the defaults below apply.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import * as Schema from "effect/Schema"

/**
 * The resolved reconnection policy.
 *
 * Delay of retry `n` (counting from 0): `min(cap, min(cap, base * factor^n) * u)` with `u` drawn
 * uniformly from `[1 - jitter, 1 + jitter]`. Jitter is applied below the cap too, so a fleet of
 * clients that lost the same server does not come back in lock-step even once every one of them has
 * reached the cap.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReconnectPolicy {
  /** first delay (default 100 ms) */
  readonly base: Duration.Duration
  /** growth per attempt (default 2) */
  readonly factor: number
  /** no delay is ever longer than this (default 5 s) */
  readonly cap: Duration.Duration
  /** relative spread of each delay, in `[0, 1)` (default 0.2, i.e. ±20 %) */
  readonly jitter: number
  /**
   * How long a retry that cannot corrupt (opening a connection) may keep retrying, measured from its
   * first failure (default 10 s). The last retry is moved forward so that it happens exactly when the
   * budget runs out; after that the failure is returned to the caller.
   */
  readonly budget: Duration.Duration
  /**
   * Startup: how long to wait for a database that is not accepting connections yet (refused, connect
   * timeout, 57P03 "the database system is starting up"). `None` (the default) keeps startup strict:
   * the first failure refuses to start. TLS and authentication failures are never waited for.
   */
  readonly waitForDatabase: Option.Option<Duration.Duration>
}

/**
 * The options accepted by `layer` / `makePolicy`; everything unset keeps its default.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReconnectOptions {
  readonly base?: Duration.DurationInput
  readonly factor?: number
  readonly cap?: Duration.DurationInput
  readonly jitter?: number
  readonly budget?: Duration.DurationInput
  readonly waitForDatabase?: Duration.DurationInput
}

/**
 * 100 ms doubling up to 5 s, ±20 % jitter, 10 s retry budget, no wait for the database at startup.
 * 100 ms is about the time a local PostgreSQL needs to come back after a fast restart; 5 s keeps a
 * long outage from being hammered while still noticing recovery within seconds; 10 s fits inside
 * the usual 30 s request timeouts of the services calling us.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultPolicy: ReconnectPolicy = {
  base: Duration.millis(100),
  factor: 2,
  cap: Duration.seconds(5),
  jitter: 0.2,
  budget: Duration.seconds(10),
  waitForDatabase: Option.none()
}

/**
 * The reconnection options do not describe a usable backoff.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidReconnectPolicy extends Schema.TaggedError<InvalidReconnectPolicy>()("InvalidReconnectPolicy", {
  field: Schema.String,
  value: Schema.String,
  message: Schema.String
}) {}

const invalid = (field: string, value: unknown, rule: string) =>
  new InvalidReconnectPolicy({
    field,
    value: String(value),
    message: `ReconnectSchedule: ${field} = ${String(value)} is invalid: ${rule}. Fix the option passed to ReconnectSchedule.layer.`
  })

/**
 * Validates options and fills in the defaults.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePolicy = (options: ReconnectOptions = {}): Effect.Effect<ReconnectPolicy, InvalidReconnectPolicy> =>
  Effect.gen(function*() {
    const base = options.base === undefined ? defaultPolicy.base : Duration.decode(options.base)
    const cap = options.cap === undefined ? defaultPolicy.cap : Duration.decode(options.cap)
    const budget = options.budget === undefined ? defaultPolicy.budget : Duration.decode(options.budget)
    const factor = options.factor ?? defaultPolicy.factor
    const jitter = options.jitter ?? defaultPolicy.jitter
    const waitForDatabase = options.waitForDatabase === undefined
      ? Option.none()
      : Option.some(Duration.decode(options.waitForDatabase))
    if (!Duration.isFinite(base) || Duration.toMillis(base) <= 0) {
      return yield* invalid("base", Duration.format(base), "must be a finite duration above zero")
    }
    if (!Duration.isFinite(cap) || Duration.lessThan(cap, base)) {
      return yield* invalid("cap", Duration.format(cap), "must be finite and at least the base delay")
    }
    if (!Number.isFinite(factor) || factor < 1) {
      return yield* invalid("factor", factor, "must be a number >= 1")
    }
    if (!Number.isFinite(jitter) || jitter < 0 || jitter >= 1) {
      return yield* invalid("jitter", jitter, "must be in [0, 1)")
    }
    if (!Duration.isFinite(budget)) {
      return yield* invalid("budget", Duration.format(budget), "must be finite (a retry must end)")
    }
    if (Option.isSome(waitForDatabase) && !Duration.isFinite(waitForDatabase.value)) {
      return yield* invalid("waitForDatabase", Duration.format(waitForDatabase.value), "must be finite")
    }
    return { base, factor, cap, jitter, budget, waitForDatabase }
  })

/**
 * The reconnection policy in use. `SecureSqlClient.layer` reads it when present and falls back to
 * `defaultPolicy` otherwise, so providing it is optional.
 *
 * @since 0.1.0
 * @category tags
 */
export class ReconnectSchedule extends Context.Tag("@takumi/db/ReconnectSchedule")<
  ReconnectSchedule,
  ReconnectPolicy
>() {}

/**
 * A policy built from options (validated).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ReconnectOptions = {}): Layer.Layer<ReconnectSchedule, InvalidReconnectPolicy> =>
  Layer.effect(ReconnectSchedule, makePolicy(options))

/**
 * The policy from the context, or `defaultPolicy` when none was provided.
 *
 * @since 0.1.0
 * @category accessors
 */
export const policy: Effect.Effect<ReconnectPolicy> = Effect.map(
  Effect.serviceOption(ReconnectSchedule),
  Option.getOrElse(() => defaultPolicy)
)

/**
 * The un-jittered delay of retry `attempt` (0-based), capped: `min(cap, base * factor^attempt)`.
 *
 * @since 0.1.0
 * @category delays
 */
export const nominalDelay = (self: ReconnectPolicy, attempt: number): Duration.Duration => {
  const cap = Duration.toMillis(self.cap)
  const raw = Duration.toMillis(self.base) * Math.pow(self.factor, attempt)
  return Duration.millis(Math.min(cap, raw))
}

/**
 * The largest delay retry `attempt` can draw, jitter included (never above the cap).
 *
 * @since 0.1.0
 * @category delays
 */
export const maxDelay = (self: ReconnectPolicy, attempt: number): Duration.Duration =>
  Duration.millis(Math.min(Duration.toMillis(self.cap), Duration.toMillis(nominalDelay(self, attempt)) * (1 + self.jitter)))

/**
 * The longest single delay that a retry which has been failing for `elapsed` can be waiting in.
 * A retry that began within the last `elapsed` cannot have spent longer than that in its earlier
 * delays (each at least `nominal * (1 - jitter)`), which bounds how far its backoff has grown; so
 * once the server accepts again, such a caller's next attempt comes within this bound. Used to
 * state "recovery within one backoff step" as a checkable number.
 *
 * @since 0.1.0
 * @category delays
 */
export const stepBound = (self: ReconnectPolicy, elapsed: Duration.DurationInput): Duration.Duration => {
  const budget = Duration.toMillis(Duration.decode(elapsed))
  let attempt = 0
  let earliestStart = 0
  for (;;) {
    const shortest = Duration.toMillis(nominalDelay(self, attempt)) * (1 - self.jitter)
    // step `attempt + 1` cannot have started yet, or the cap is reached (every later step is the same)
    if (earliestStart + shortest > budget || Duration.toMillis(nominalDelay(self, attempt)) >= Duration.toMillis(self.cap)) {
      return maxDelay(self, attempt)
    }
    earliestStart += shortest
    attempt++
  }
}

const jitteredDelay = (self: ReconnectPolicy, attempt: number): Effect.Effect<number> => {
  const nominal = Duration.toMillis(nominalDelay(self, attempt))
  if (self.jitter === 0) return Effect.succeed(nominal)
  return Effect.map(
    Random.nextRange(1 - self.jitter, 1 + self.jitter),
    (u) => Math.min(Duration.toMillis(self.cap), nominal * u)
  )
}

interface BackoffState {
  readonly attempt: number
  readonly startedAt: number | undefined
}

const make = (self: ReconnectPolicy, budget: Option.Option<Duration.Duration>): Schedule.Schedule<Duration.Duration> =>
  Schedule.makeWithState<BackoffState, unknown, Duration.Duration>(
    { attempt: 0, startedAt: undefined },
    (now, _input, state) => {
      const startedAt = state.startedAt ?? now
      return Effect.map(jitteredDelay(self, state.attempt), (drawn) => {
        let delay = drawn
        if (Option.isSome(budget)) {
          const remaining = Duration.toMillis(budget.value) - (now - startedAt)
          if (remaining <= 0) {
            return [state, Duration.zero, ScheduleDecision.done] as const
          }
          delay = Math.min(delay, remaining)
        }
        return [
          { attempt: state.attempt + 1, startedAt },
          Duration.millis(delay),
          ScheduleDecision.continueWith(ScheduleInterval.after(now + delay))
        ] as const
      })
    }
  )

/**
 * The backoff without an end: how the health supervisor re-probes a server until it answers.
 * Outputs the delay it chose for each step.
 *
 * @since 0.1.0
 * @category schedules
 */
export const backoff = (self: ReconnectPolicy): Schedule.Schedule<Duration.Duration> => make(self, Option.none())

/**
 * The backoff limited to the policy's `budget`: how connection acquisition (and `Idempotent.retry`)
 * retries. Outputs the delay it chose for each step; the last one is shortened to end on the budget.
 *
 * @since 0.1.0
 * @category schedules
 */
export const retry = (self: ReconnectPolicy): Schedule.Schedule<Duration.Duration> => make(self, Option.some(self.budget))

/**
 * The backoff limited to an explicit budget (used for `waitForDatabase`).
 *
 * @since 0.1.0
 * @category schedules
 */
export const within = (self: ReconnectPolicy, budget: Duration.DurationInput): Schedule.Schedule<Duration.Duration> =>
  make(self, Option.some(Duration.decode(budget)))
