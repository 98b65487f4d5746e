/**
 * The shutdown signal of a service: once draining begins, `/readyz` answers 503 so the load
 * balancer or orchestrator stops routing new requests, and the pool stays open for a grace period
 * so statements already in flight finish. Only then may the layers close (the pool last).
 *
 * Why a grace period and not "wait until idle": requests keep arriving until the balancer has seen
 * the 503 (Kubernetes: up to `periodSeconds × failureThreshold` of the readiness probe), and a
 * pool can look idle between two of them. The default, 15 s, covers a readiness probe every 5 s
 * failing 3 times and fits in Kubernetes' default `terminationGracePeriodSeconds` (30 s) with room
 * for the pool to close; set it to your probe settings plus your longest expected statement.
 *
 * `layer` needs `DbHealth`, which pins the order: built after the database layer, so its
 * finalizer (the drain) runs before the pool's. `HealthHttp.layerServer` also drains before it
 * closes its HTTP server, so the 503 is served for the whole grace period.
 *
 * @since 0.1.0
 */
import { DbHealth } from "@takumi/db"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"

/**
 * The default grace period between the readiness flip and the end of the drain.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultGrace: Duration.Duration = Duration.seconds(15)

/**
 * The drain state of the service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Draining extends Context.Tag("@takumi/observability/Draining")<Draining, {
  /** true from the moment `drain` was first called */
  readonly isDraining: Effect.Effect<boolean>
  /**
   * flips readiness, then waits the grace period (on `Clock`); later and concurrent calls wait
   * for the same end without a second flip or grace
   */
  readonly drain: Effect.Effect<void>
  readonly grace: Duration.Duration
}>() {}

/**
 * Options of `make` and `layer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** time between the readiness flip and the end of `drain` (default `defaultGrace`, 15 s) */
  readonly grace?: Duration.DurationInput | undefined
}

/**
 * A drain state, not draining yet.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Context.Tag.Service<Draining>> =>
  Effect.gen(function*() {
    const grace = Duration.decode(options.grace ?? defaultGrace)
    const draining = yield* Ref.make(false)
    const done = yield* Deferred.make<void>()
    const drain = Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Ref.getAndSet(draining, true), (already) =>
        already
          ? restore(Deferred.await(done))
          : Effect.logInfo(`Draining: readiness now fails; waiting ${Duration.format(grace)} for in-flight statements`).pipe(
            Effect.zipRight(restore(Effect.sleep(grace)).pipe(Effect.exit)),
            Effect.zipRight(Deferred.succeed(done, undefined)),
            Effect.asVoid
          ))
    )
    return { isDraining: Ref.get(draining), drain, grace }
  })

/**
 * The drain state as a layer that drains (flip, grace) when it is released, before the database
 * layer it depends on closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Draining, never, DbHealth.DbHealth> =>
  Layer.scoped(
    Draining,
    Effect.gen(function*() {
      const health = yield* DbHealth.DbHealth
      const service = yield* make(options)
      yield* Effect.addFinalizer(() =>
        Effect.flatMap(health.get, (snapshot) => Effect.annotateLogs(service.drain, "db.health", snapshot.status))
      )
      return service
    })
  )

/**
 * Begins the drain of the provided `Draining` and waits out its grace period.
 *
 * @since 0.1.0
 * @category accessors
 */
export const drain: Effect.Effect<void, never, Draining> = Effect.flatMap(Draining, (service) => service.drain)

/**
 * Whether the provided `Draining` has begun draining.
 *
 * @since 0.1.0
 * @category accessors
 */
export const isDraining: Effect.Effect<boolean, never, Draining> = Effect.flatMap(Draining, (service) => service.isDraining)
