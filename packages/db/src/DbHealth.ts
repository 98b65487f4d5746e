/**
 * Is the database usable right now? `DbHealth` is fed by the running client — pool `error` events,
 * connections lost mid-query, connection attempts that fail — and by its own supervisor, which
 * probes a server that failed on the reconnect backoff (`ReconnectSchedule`) until it answers.
 *
 * - `healthy`: the primary answered its last probe and the read replica (if configured) serves reads.
 * - `degraded`: the primary works but something is off: a connection error was just seen and the
 *   probe is on its way, the read replica is unavailable and reads go to the primary, or every
 *   connection of a pool is stuck in a statement running past the slow-query threshold (a server
 *   or network path that stopped answering, or statements waiting on locks). `detail` says which.
 * - `down`: the primary did not answer its last probe; it is re-probed on the backoff.
 *
 * For orchestrators: use `readiness` for the readiness check (fails while `down`, so no traffic is
 * routed to an instance that cannot reach its database) and `liveness` for the liveness check
 * (fails only if the supervisor itself stopped). A database outage must never fail liveness:
 * restarting the process does not bring the database back, it only adds a restart storm.
 *
 * `SecureSqlClient.layer` provides `DbHealth`.
 *
 * @since 0.1.0
 */
import type { ServerAddress } from "@takumi/config"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as supervisor from "./internal/resilience/supervisor.js"
import * as ReconnectSchedule from "./ReconnectSchedule.js"

/**
 * `healthy | degraded | down`; see the module documentation.
 *
 * @since 0.1.0
 * @category models
 */
export type HealthStatus = supervisor.HealthStatus

/**
 * The state of one server (primary or replica): `up`, `suspect` (an error was seen, the probe is on
 * its way) or `down` (the last probe failed), since when, its last typed error and, while down, the
 * backoff delay before the next probe.
 *
 * @since 0.1.0
 * @category models
 */
export type ServerState = supervisor.ServerState

/**
 * Every connection of a server's pool is checked out with a statement running longer than the
 * slow-query threshold (`DB_ALERT_SLOW_QUERY`): the server counts as degraded until one answers.
 *
 * @since 0.1.0
 * @category models
 */
export type StuckStatements = supervisor.StuckStatements

/**
 * What `DbHealth` reports: the overall status and since when (from `Clock`), why it is not
 * healthy (`detail`), the last error (a typed `DbError` or `SecretError`, never a secret) and
 * when it happened, and each server's state.
 *
 * @since 0.1.0
 * @category models
 */
export type HealthSnapshot = supervisor.HealthSnapshot

/**
 * A typed failure `DbHealth` can report.
 *
 * @since 0.1.0
 * @category models
 */
export type HealthIssue = supervisor.HealthIssue

/**
 * The readiness check failed: the primary does not answer.
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  /** ISO-8601 time the database went down */
  since: Schema.String,
  /** `_tag` of the last error, e.g. `ConnectionRefused` */
  lastError: Schema.optional(Schema.String),
  reason: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const reason = this.reason === undefined ? "" : `: ${this.reason}`
    return `The primary database has not answered since ${this.since}${reason}. ` +
      "Takumi DB re-probes it on the reconnect backoff and reports healthy as soon as it answers; " +
      "check the server, the network path and the last error."
  }
}

/**
 * The liveness check failed: the health supervisor is no longer running, so health can no longer
 * be trusted. Restarting the process is the fix.
 *
 * @since 0.1.0
 * @category errors
 */
export class HealthSupervisorStopped extends Schema.TaggedError<HealthSupervisorStopped>()(
  "HealthSupervisorStopped",
  { role: Schema.Literal("primary", "replica") }
) {
  override get message(): string {
    return `The ${this.role} health supervisor of Takumi DB has stopped; database health is unknown. ` +
      "Restart the process and report the logs preceding this message."
  }
}

/**
 * The health of the database connection.
 *
 * @since 0.1.0
 * @category tags
 */
export class DbHealth extends Context.Tag("@takumi/db/DbHealth")<DbHealth, {
  /** the current snapshot */
  readonly get: Effect.Effect<HealthSnapshot>
  /** the current snapshot, then every change */
  readonly changes: Stream.Stream<HealthSnapshot>
  /** succeeds unless the primary is down */
  readonly readiness: Effect.Effect<HealthSnapshot, DatabaseUnavailable>
  /** succeeds while the supervisors run, whatever the database's state */
  readonly liveness: Effect.Effect<HealthSnapshot, HealthSupervisorStopped>
  /** tells the supervisor of `role` about an error seen at run time; it probes the server at once */
  readonly report: (role: supervisor.ServerRole, error: HealthIssue) => Effect.Effect<void>
}>() {}

/**
 * The readiness check of the provided `DbHealth`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const readiness: Effect.Effect<HealthSnapshot, DatabaseUnavailable, DbHealth> = Effect.flatMap(
  DbHealth,
  (health) => health.readiness
)

/**
 * The liveness check of the provided `DbHealth`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const liveness: Effect.Effect<HealthSnapshot, HealthSupervisorStopped, DbHealth> = Effect.flatMap(
  DbHealth,
  (health) => health.liveness
)

/**
 * What `make` needs: how to probe each server (bounded in time, failing with the typed reason) and
 * the backoff to probe on. Hooks let the caller react when a server goes down or comes back
 * (the read replica routes reads on them).
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  readonly probePrimary: Effect.Effect<void, HealthIssue>
  readonly probeReplica?: Effect.Effect<void, HealthIssue> | undefined
  readonly policy?: ReconnectSchedule.ReconnectPolicy | undefined
  readonly onReplicaDown?: ((error: HealthIssue) => Effect.Effect<void>) | undefined
  readonly onReplicaUp?: Effect.Effect<void> | undefined
}

/**
 * The running health service plus what the client wiring needs to route reads.
 *
 * @since 0.1.0
 * @category models
 */
export interface Supervised {
  readonly health: Context.Tag.Service<DbHealth>
  /** the replica's current state (`None` without a replica) */
  readonly replicaState: Effect.Effect<Option.Option<ServerState>>
  /**
   * sets whether every connection of the pool of `role` is stuck in a slow statement (`Some`:
   * degraded, `None`: no longer); no probe is made — the server may well answer new connections
   */
  readonly reportStuck: (role: supervisor.ServerRole, stuck: Option.Option<StuckStatements>) => Effect.Effect<void>
  /**
   * with several hosts in `DB_HOST`: the primary's connections now go to `to` (the writable server
   * found there); `from` is where they went before, `undefined` for the first one found
   */
  readonly reportPrimaryAt: (to: ServerAddress, from: ServerAddress | undefined) => Effect.Effect<void>
}

/**
 * Starts the supervisors in the current scope. The primary starts `up` (startup has just verified
 * it); a replica starts `suspect` and is probed at once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSupervised = (options: MakeOptions): Effect.Effect<Supervised, never, Scope.Scope> =>
  Effect.gen(function*() {
    const policy = options.policy ?? (yield* ReconnectSchedule.policy)
    const state = yield* supervisor.makeHealthState(options.probeReplica !== undefined)
    const primary = yield* supervisor.makeServerSupervisor({
      role: "primary",
      state,
      probe: options.probePrimary,
      policy
    })
    const replica = options.probeReplica === undefined ? undefined : yield* supervisor.makeServerSupervisor({
      role: "replica",
      state,
      probe: options.probeReplica,
      policy,
      onDown: options.onReplicaDown,
      onUp: options.onReplicaUp
    })
    if (replica !== undefined) yield* replica.probeNow

    const get = SubscriptionRef.get(state.ref)
    const health: Context.Tag.Service<DbHealth> = {
      get,
      changes: state.ref.changes,
      readiness: Effect.flatMap(get, (snapshot) =>
        snapshot.status === "down"
          ? Effect.fail(
            new DatabaseUnavailable({
              since: DateTime.formatIso(snapshot.since),
              ...Option.match(snapshot.primary.lastError, {
                onNone: () => ({}),
                onSome: (error) => ({ lastError: error._tag, reason: error.message })
              })
            })
          )
          : Effect.succeed(snapshot)),
      liveness: Effect.gen(function*() {
        if (yield* primary.stopped) return yield* new HealthSupervisorStopped({ role: "primary" })
        if (replica !== undefined && (yield* replica.stopped)) {
          return yield* new HealthSupervisorStopped({ role: "replica" })
        }
        return yield* get
      }),
      report: (role, error) =>
        role === "primary" ? primary.report(error) : replica === undefined ? Effect.void : replica.report(error)
    }
    return {
      health,
      replicaState: Effect.map(get, (snapshot) => snapshot.replica),
      reportStuck: (role, stuck) => state.update(role, (s) => ({ ...s, stuck })),
      reportPrimaryAt: (to, from) =>
        state.update("primary", (s, now) =>
          from === undefined
            ? { ...s, address: Option.some(to) }
            : { ...s, address: Option.some(to), previousAddress: Option.some(from), movedAt: Option.some(now) })
    }
  })

/**
 * Starts the supervisors and returns the service (see `makeSupervised`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: MakeOptions): Effect.Effect<Context.Tag.Service<DbHealth>, never, Scope.Scope> =>
  Effect.map(makeSupervised(options), (supervised) => supervised.health)

/**
 * A `DbHealth` that always reports the given status, for tests of code that reads health.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest = (status: HealthStatus = "healthy"): Layer.Layer<DbHealth> =>
  Layer.effect(
    DbHealth,
    Effect.map(DateTime.now, (now) => {
      const server: ServerState = {
        ...supervisor.upState(now),
        status: status === "down" ? "down" : status === "degraded" ? "suspect" : "up"
      }
      const snapshot: HealthSnapshot = {
        status,
        since: now,
        lastError: Option.none(),
        lastErrorAt: Option.none(),
        primary: server,
        replica: Option.none(),
        detail: supervisor.describeStatus(server, Option.none())
      }
      return {
        get: Effect.succeed(snapshot),
        changes: Stream.succeed(snapshot),
        readiness: status === "down"
          ? Effect.fail(new DatabaseUnavailable({ since: DateTime.formatIso(now) }))
          : Effect.succeed(snapshot),
        liveness: Effect.succeed(snapshot),
        report: () => Effect.void
      }
    })
  )
