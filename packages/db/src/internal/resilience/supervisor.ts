/**
 * The health state machine behind `DbHealth`: one supervisor per server (primary, replica). A
 * reported connection error makes the server `suspect` and wakes its supervisor, which probes the
 * server at once and, while the probe fails, again on the reconnect backoff (server `down`) until it
 * answers (server `up`). Every change is published in one `SubscriptionRef`, so readers and tests
 * wait for events instead of sleeping.
 *
 * @internal
 */
import type { ServerAddress } from "@takumi/config"
import type { SecretError } from "@takumi/secrets"
import * as DateTime from "effect/DateTime"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { DbError } from "../../DbError.js"
import * as ReconnectSchedule from "../../ReconnectSchedule.js"

/** What a health snapshot can name as the last error: a typed database or secrets failure. */
export type HealthIssue = DbError | SecretError

/** The two servers a client can talk to. */
export type ServerRole = "primary" | "replica"

/**
 * Every connection of a server's pool is checked out with a statement that has run longer than the
 * slow-query threshold: nothing else can run there until one of them answers.
 */
export interface StuckStatements {
  /** connections with a statement running past the threshold */
  readonly connections: number
  /** the pool's `DB_POOL_MAX` */
  readonly max: number
  /** the slow-query threshold (`DB_ALERT_SLOW_QUERY`) */
  readonly thresholdMillis: number
  /** how long the oldest of them had run when this was seen */
  readonly oldestMillis: number
}

/** The state of one server as its supervisor sees it. */
export interface ServerState {
  /** `up`: answered the last probe; `suspect`: an error was reported, a probe is on its way; `down`: the last probe failed */
  readonly status: "up" | "suspect" | "down"
  /** when `status` last changed */
  readonly since: DateTime.Utc
  readonly lastError: Option.Option<HealthIssue>
  readonly lastErrorAt: Option.Option<DateTime.Utc>
  /** while down: the backoff delay before the next probe */
  readonly retryDelay: Option.Option<Duration.Duration>
  /** probes that failed since the server was last up */
  readonly failedProbes: number
  /** `Some` while every connection of its pool is stuck in a slow statement (the server counts as degraded) */
  readonly stuck: Option.Option<StuckStatements>
  /**
   * The primary with several hosts in `DB_HOST`: the host its connections go to, the writable one
   * they found (`None` with a single host, or before the first writable connection)
   */
  readonly address: Option.Option<ServerAddress>
  /** the host the writable server was at before it last moved (a failover); `None` if it never moved */
  readonly previousAddress: Option.Option<ServerAddress>
  /** when it last moved */
  readonly movedAt: Option.Option<DateTime.Utc>
}

/** The overall status; see `DbHealth`. */
export type HealthStatus = "healthy" | "degraded" | "down"

/** Everything `DbHealth` reports. */
export interface HealthSnapshot {
  readonly status: HealthStatus
  /** when `status` last changed */
  readonly since: DateTime.Utc
  /** the most recent error seen on either server */
  readonly lastError: Option.Option<HealthIssue>
  readonly lastErrorAt: Option.Option<DateTime.Utc>
  readonly primary: ServerState
  /** `None` when no read replica is configured */
  readonly replica: Option.Option<ServerState>
  /** why the status is not `healthy`, in words (`None` while healthy) */
  readonly detail: Option.Option<string>
}

/**
 * The overall status: the primary decides between down and up; anything short of fully up
 * degrades, and so does a pool whose every connection is stuck in a slow statement.
 */
export const deriveStatus = (primary: ServerState, replica: Option.Option<ServerState>): HealthStatus => {
  if (primary.status === "down") return "down"
  if (primary.status === "suspect" || Option.isSome(primary.stuck)) return "degraded"
  if (Option.isSome(replica) && (replica.value.status !== "up" || Option.isSome(replica.value.stuck))) return "degraded"
  return "healthy"
}

const describeStuck = (name: string, stuck: StuckStatements): string =>
  `every connection of the ${name} pool (${stuck.connections} of ${stuck.max}) has a statement running for more ` +
  `than ${Math.round(stuck.thresholdMillis)} ms (the oldest ${Math.round(stuck.oldestMillis)} ms): the server, a ` +
  "proxy or the network path may have stopped answering, or the statements wait on locks (see the SlowQuery alerts)"

const describeServer = (role: ServerRole, state: ServerState): ReadonlyArray<string> => {
  const name = role === "primary" ? "primary" : "read replica"
  const error = Option.match(state.lastError, { onNone: () => "", onSome: (e) => ` (${e._tag})` })
  const status = state.status === "down"
    ? [`the ${name} did not answer its last probe${error}${role === "replica" ? "; reads go to the primary" : ""}`]
    : state.status === "suspect"
    ? [`the ${name} is being probed after an error${error}`]
    : []
  return [...status, ...Option.match(state.stuck, { onNone: () => [], onSome: (s) => [describeStuck(name, s)] })]
}

/** Why a snapshot is not healthy, for `HealthSnapshot.detail`. */
export const describeStatus = (primary: ServerState, replica: Option.Option<ServerState>): Option.Option<string> => {
  const reasons = [
    ...describeServer("primary", primary),
    ...Option.match(replica, { onNone: () => [], onSome: (r) => describeServer("replica", r) })
  ]
  return reasons.length === 0 ? Option.none() : Option.some(reasons.join("; "))
}

const latestError = (
  primary: ServerState,
  replica: Option.Option<ServerState>
): Pick<HealthSnapshot, "lastError" | "lastErrorAt"> => {
  const candidates = [primary, ...Option.toArray(replica)].flatMap((s) =>
    Option.isSome(s.lastError) && Option.isSome(s.lastErrorAt)
      ? [{ error: s.lastError.value, at: s.lastErrorAt.value }]
      : []
  )
  const latest = candidates.reduce<typeof candidates[number] | undefined>(
    (best, c) => (best === undefined || DateTime.greaterThan(c.at, best.at) ? c : best),
    undefined
  )
  return latest === undefined
    ? { lastError: Option.none(), lastErrorAt: Option.none() }
    : { lastError: Option.some(latest.error), lastErrorAt: Option.some(latest.at) }
}

/** A fresh server state: up since `now`. */
export const upState = (now: DateTime.Utc): ServerState => ({
  status: "up",
  since: now,
  lastError: Option.none(),
  lastErrorAt: Option.none(),
  retryDelay: Option.none(),
  failedProbes: 0,
  stuck: Option.none(),
  address: Option.none(),
  previousAddress: Option.none(),
  movedAt: Option.none()
})

/** Builds the snapshot for new server states, keeping `since` unless the overall status changed. */
export const nextSnapshot = (
  previous: HealthSnapshot | undefined,
  primary: ServerState,
  replica: Option.Option<ServerState>,
  now: DateTime.Utc
): HealthSnapshot => {
  const status = deriveStatus(primary, replica)
  return {
    status,
    since: previous !== undefined && previous.status === status ? previous.since : now,
    ...latestError(primary, replica),
    primary,
    replica,
    detail: describeStatus(primary, replica)
  }
}

/** The shared state both supervisors write to. */
export interface HealthState {
  readonly ref: SubscriptionRef.SubscriptionRef<HealthSnapshot>
  readonly update: (role: ServerRole, f: (state: ServerState, now: DateTime.Utc) => ServerState) => Effect.Effect<void>
}

/** Starts the shared state: the primary up (startup just verified it), the replica (if any) suspect until probed. */
export const makeHealthState = (withReplica: boolean): Effect.Effect<HealthState> =>
  Effect.gen(function*() {
    const now = yield* DateTime.now
    const replica = withReplica ? Option.some<ServerState>({ ...upState(now), status: "suspect" }) : Option.none()
    const ref = yield* SubscriptionRef.make(nextSnapshot(undefined, upState(now), replica, now))
    const update: HealthState["update"] = (role, f) =>
      SubscriptionRef.updateEffect(ref, (snapshot) =>
        Effect.map(DateTime.now, (now) => {
          if (role === "primary") {
            return nextSnapshot(snapshot, f(snapshot.primary, now), snapshot.replica, now)
          }
          return Option.match(snapshot.replica, {
            onNone: () => snapshot,
            onSome: (replica) => nextSnapshot(snapshot, snapshot.primary, Option.some(f(replica, now)), now)
          })
        }))
    return { ref, update }
  })

/** One running supervisor. */
export interface ServerSupervisor {
  readonly role: ServerRole
  /** records an error seen on this server and wakes the supervisor (returns at once) */
  readonly report: (error: HealthIssue) => Effect.Effect<void>
  /** wakes the supervisor without an error: probe now */
  readonly probeNow: Effect.Effect<void>
  /** `Some` once the supervisor fiber has stopped (it never should while its scope is open) */
  readonly stopped: Effect.Effect<boolean>
}

const withStatus = (state: ServerState, status: ServerState["status"], now: DateTime.Utc): ServerState =>
  state.status === status ? state : { ...state, status, since: now }

/**
 * Starts the supervisor of one server in the current scope. `probe` must bound itself in time (the
 * connect timeout) and fail with the typed reason the server could not be used.
 */
export const makeServerSupervisor = (options: {
  readonly role: ServerRole
  readonly state: HealthState
  readonly probe: Effect.Effect<void, HealthIssue>
  readonly policy: ReconnectSchedule.ReconnectPolicy
  readonly onDown?: ((error: HealthIssue) => Effect.Effect<void>) | undefined
  readonly onUp?: Effect.Effect<void> | undefined
}): Effect.Effect<ServerSupervisor, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { role, state } = options
    const wakeups = yield* Queue.sliding<void>(1)

    const recordError = (error: HealthIssue, status: ServerState["status"]) =>
      state.update(role, (s, now) => ({
        ...withStatus(s, s.status === "down" ? "down" : status, now),
        lastError: Option.some(error),
        lastErrorAt: Option.some(now)
      }))

    const probeFailed = (error: HealthIssue) =>
      Effect.zipRight(
        state.update(role, (s, now) => ({
          ...withStatus(s, "down", now),
          lastError: Option.some(error),
          lastErrorAt: Option.some(now),
          failedProbes: s.failedProbes + 1
        })),
        Effect.logWarning(`DbHealth: ${role} did not answer the probe: ${error.message}`)
      )

    const backoff = ReconnectSchedule.backoff(options.policy).pipe(
      Schedule.tapOutput((delay) => state.update(role, (s) => ({ ...s, retryDelay: Option.some(delay) })))
    )

    const cycle = Effect.gen(function*() {
      yield* Queue.take(wakeups)
      const before = (yield* SubscriptionRef.get(state.ref))
      const wasDown = (role === "primary" ? before.primary : Option.getOrUndefined(before.replica))?.status === "down"
      let notifiedDown = wasDown
      yield* options.probe.pipe(
        Effect.tapError((error) =>
          Effect.zipRight(
            probeFailed(error),
            notifiedDown || options.onDown === undefined
              ? Effect.void
              : Effect.zipRight(Effect.sync(() => {
                notifiedDown = true
              }), options.onDown(error))
          )
        ),
        Effect.retry(backoff)
      )
      // reports that arrived while probing are answered by this successful probe
      yield* Queue.takeAll(wakeups)
      yield* state.update(role, (s, now) => ({ ...withStatus(s, "up", now), retryDelay: Option.none(), failedProbes: 0 }))
      if (notifiedDown && options.onUp !== undefined) yield* options.onUp
      if (notifiedDown) yield* Effect.logInfo(`DbHealth: ${role} answers again`)
    })

    const fiber = yield* Effect.forkScoped(Effect.forever(cycle))

    return {
      role,
      report: (error) => Effect.zipRight(recordError(error, "suspect"), Queue.offer(wakeups, undefined)),
      probeNow: Effect.asVoid(Queue.offer(wakeups, undefined)),
      stopped: Effect.map(Fiber.poll(fiber), Option.isSome)
    }
  })
