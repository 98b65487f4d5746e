/**
 * Security alerts: a stream of typed events for what the requirements say must raise an alert —
 * repeated failed authentications, any unencrypted connection attempt, a pool near exhaustion, a
 * slow query, a server certificate close to expiry, a credential not rotated within
 * `DB_CREDENTIAL_MAX_AGE` — plus the read replica failing over and coming back, a secret served
 * stale, and the primary moving to another listed host. Every alert is also logged (`Effect.logWarning`,
 * annotated `alert=<kind>`) and counted (`takumi_db_security_alerts_total{kind}`), so nothing is
 * lost when nobody subscribes.
 *
 * `SecureSqlClient.layer` provides `SecurityAlerts` and raises the alerts; thresholds come from
 * `settings.alerts` (`DbSettings`). Subscribe in the program:
 *
 * ```ts
 * const watch = Effect.gen(function*() {
 *   const alerts = yield* SecurityAlerts.SecurityAlerts
 *   yield* Stream.runForEach(alerts.stream, (alert) =>
 *     alert._tag === "RepeatedAuthenticationFailures" ? pageOnCall(alert) : Effect.void)
 * })
 * ```
 *
 * No alert carries a secret: no password, no key, no SQL parameter, no literal of a statement.
 * `SlowQuery` shows a statement as PostgreSQL's own scanner reads it (libpg-query, an optional
 * peer), every constant blanked, or without libpg-query only its first keyword and a fingerprint.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as DbMetrics from "./DbMetrics.js"
import type { ReadReplicaFailedOver, ReadReplicaRestored } from "./ReadReplica.js"

const Server = {
  host: Schema.String,
  port: Schema.Number
}

/**
 * `failedAuthThreshold` authentications refused with 28P01 (wrong password or unknown user)
 * within `failedAuthWindow` (sliding). Raised once per burst: the count starts again after it.
 * One count per connection that could not be opened: a 28P01 makes the pool re-read the secret
 * and retry once, and only the refusal that stands after that retry counts. A refusal the re-read
 * secret cures (a password rotation seen by a burst of new connections) never counts, so a
 * legitimate rotation cannot raise the alert. The health probes' own connections do not count.
 *
 * @since 0.1.0
 * @category alerts
 */
export class RepeatedAuthenticationFailures
  extends Schema.TaggedClass<RepeatedAuthenticationFailures>()("RepeatedAuthenticationFailures", {
    ...Server,
    user: Schema.String,
    database: Schema.String,
    failures: Schema.Number,
    windowMillis: Schema.Number
  })
{
  get message(): string {
    return `${this.failures} failed PostgreSQL authentications (28P01) for user "${this.user}" at ` +
      `${this.host}:${this.port} within ${Math.round(this.windowMillis / 1000)} s: check that the DB_PASSWORD ` +
      "secret matches the role, and whether someone is guessing passwords (the server log has the client addresses)"
  }
}

/**
 * A connection that would not be, or was not, encrypted: the server refused TLS ("does not
 * support SSL connections" — the client never falls back to plaintext), pg_hba.conf rejected a
 * client without encryption, or a connection was established without TLS (TLS disabled by
 * configuration: raised once at startup).
 *
 * @since 0.1.0
 * @category alerts
 */
export class UnencryptedConnection extends Schema.TaggedClass<UnencryptedConnection>()("UnencryptedConnection", {
  ...Server,
  /** what was seen, e.g. "the server does not support SSL connections" */
  reason: Schema.String,
  /** the error's `_tag` or posture rule that revealed it, e.g. `SslNotSupportedByServer`, `TlsNotNegotiated` */
  source: Schema.String
}) {
  get message(): string {
    return `Unencrypted PostgreSQL connection attempt at ${this.host}:${this.port} (${this.source}): ${this.reason}. ` +
      "Every connection must use TLS: set DB_SSL=true and ssl = on on the server, and check for a proxy downgrading the connection"
  }
}

/**
 * Connections in use reached `poolUsageRatio` of the pool's maximum. Raised when the level is
 * crossed, again only after use fell back below it.
 *
 * @since 0.1.0
 * @category alerts
 */
export class PoolNearExhaustion extends Schema.TaggedClass<PoolNearExhaustion>()("PoolNearExhaustion", {
  ...Server,
  active: Schema.Number,
  max: Schema.Number,
  waiting: Schema.Number,
  /** the configured `poolUsageRatio` */
  ratio: Schema.Number
}) {
  get message(): string {
    return `PostgreSQL pool for ${this.host}:${this.port} at ${this.active}/${this.max} connections in use ` +
      `(alert at ${Math.round(this.ratio * 100)} %), ${this.waiting} waiting: look for slow queries or long ` +
      "transactions, or raise DB_POOL_MAX within the server's max_connections (takumi-db pool-size)"
  }
}

/**
 * A statement ran longer than `slowQuery`: raised while it is still running (`running: true`,
 * found by a check of the statements in flight every `slowQuery / 2`, so between 1 and 1.5
 * thresholds after it was submitted — a statement that never answers is reported too), or when it
 * completes over the threshold between two checks. Once per statement. Parameters are never
 * included, and neither is any literal of the statement (see `statement`).
 *
 * @since 0.1.0
 * @category alerts
 */
export class SlowQuery extends Schema.TaggedClass<SlowQuery>()("SlowQuery", {
  ...Server,
  /** how long it had run when the alert was raised: its whole duration, unless `running` */
  durationMillis: Schema.Number,
  thresholdMillis: Schema.Number,
  /**
   * The statement as PostgreSQL's own scanner reads it, when the optional peer libpg-query (^18) is
   * installed: every constant — a string in any quoting (`'…'`, `E'…'`, `U&'…'`, `$$…$$`), a number,
   * a bit string — replaced by `?`, comments dropped, whitespace collapsed, at most 200 characters
   * (`…` when cut), e.g. `SELECT * FROM cards WHERE pan = ?`. Without libpg-query, or for a text its
   * scanner does not read to the end, only the first keyword and a fingerprint (HMAC under a key
   * drawn per client layer: repeats of a statement share it), e.g.
   * `SELECT … (fingerprint 3f1c9a0b7d2e4c58; text withheld: …)`.
   */
  statement: Schema.String,
  /** true when the statement was still running (no answer yet) when the alert was raised */
  running: Schema.optional(Schema.Boolean)
}) {
  get message(): string {
    const threshold = `(threshold ${Math.round(this.thresholdMillis)} ms): ${this.statement}`
    return this.running === true
      ? `Slow PostgreSQL statement at ${this.host}:${this.port} still running after ${Math.round(this.durationMillis)} ms ` +
        `${threshold} — check its plan (EXPLAIN ANALYZE), the locks it waits on (pg_stat_activity, pg_locks) and ` +
        "whether the server and the network path still answer"
      : `Slow PostgreSQL statement at ${this.host}:${this.port}: ${Math.round(this.durationMillis)} ms ` +
        `${threshold} — check its plan (EXPLAIN ANALYZE) and indexes`
  }
}

/**
 * The server certificate expires within `certificateExpiry`.
 *
 * @since 0.1.0
 * @category alerts
 */
export class CertificateExpiringSoon extends Schema.TaggedClass<CertificateExpiringSoon>()("CertificateExpiringSoon", {
  ...Server,
  subject: Schema.String,
  /** ISO 8601 */
  validTo: Schema.String,
  daysLeft: Schema.Number
}) {
  get message(): string {
    return `The PostgreSQL server certificate expires on ${this.validTo} (in ${this.daysLeft} days): renew it`
  }
}

/**
 * The writable server moved: `DB_HOST` lists several hosts, and a new connection found the
 * writable one (`DB_TARGET_SESSION_ATTRS`) at another host than the connections before it — a
 * failover or switchover (a standby promoted). `host`/`port` are the new primary's. Raised once
 * per move, by the first connection that lands on the new primary; never for the first primary
 * found at startup.
 *
 * @since 0.1.0
 * @category alerts
 */
export class PrimaryChanged extends Schema.TaggedClass<PrimaryChanged>()("PrimaryChanged", {
  ...Server,
  previousHost: Schema.String,
  previousPort: Schema.Number
}) {
  get message(): string {
    return `The writable PostgreSQL server moved from ${this.previousHost}:${this.previousPort} to ` +
      `${this.host}:${this.port}: new connections go there. Check that the failover was intended and that the old ` +
      "primary cannot come back writable (fence it: two writable servers split the data)"
  }
}

/**
 * The secrets cache served an expired value because the backend was unavailable (within the
 * bounded stale window of `@takumi/secrets`). Detected from `takumi_secret_fetches_total{outcome="stale"}`.
 *
 * @since 0.1.0
 * @category alerts
 */
export class SecretServedStale extends Schema.TaggedClass<SecretServedStale>()("SecretServedStale", {
  backend: Schema.String,
  /** stale serves since the previous check */
  served: Schema.Number
}) {
  get message(): string {
    return `The ${this.backend} secrets backend was unavailable and an expired secret was served ${this.served} ` +
      "time(s) from the cache: restore access to the backend before the stale window ends (SECRETS_MAX_STALE)"
  }
}

/**
 * The database password's secret is older than `credentialMaxAge` (`DB_CREDENTIAL_MAX_AGE`,
 * default 90 days: the requirements' "rotate credentials regularly (every 90 days minimum)").
 * Checked at startup and then daily, where the backend tells the age (`SecretsBackend.describe`):
 * Secrets Manager's last rotation, else its last change; Vault KV v2 the current version's
 * `created_time`. The env backend cannot tell and dynamic credentials are exempt (no alert).
 *
 * @since 0.1.0
 * @category alerts
 */
export class CredentialRotationOverdue extends Schema.TaggedClass<CredentialRotationOverdue>()("CredentialRotationOverdue", {
  backend: Schema.String,
  /** the secret's id or path, e.g. `takumi/production/DB_PASSWORD` or `secret/takumi/production` */
  secret: Schema.String,
  /** the key read from it, `DB_PASSWORD` */
  key: Schema.String,
  /** when the current credential was set, ISO 8601 */
  setAt: Schema.String,
  /** whole days since `setAt` */
  ageDays: Schema.Number,
  /** the configured `credentialMaxAge`, in days */
  maxAgeDays: Schema.Number,
  /** whether the backend rotates it on a schedule, when it can tell (Secrets Manager) */
  rotationEnabled: Schema.optional(Schema.Boolean)
}) {
  get message(): string {
    const overdue = `The database credential ${this.key} (${this.backend} secret "${this.secret}") was set on ` +
      `${this.setAt}, ${this.ageDays} days ago, past DB_CREDENTIAL_MAX_AGE (${this.maxAgeDays} days): rotate it`
    if (this.backend === "vault") {
      return `${overdue} (ALTER ROLE ... PASSWORD, then vault kv patch ${this.secret} ${this.key}=...), or move to ` +
        "dynamic database credentials (the database secrets engine), which have leases instead of an age"
    }
    return this.rotationEnabled === true
      ? `${overdue}; automatic rotation is on but has not completed since: check the rotation function's logs ` +
        `(aws secretsmanager describe-secret --secret-id ${this.secret})`
      : `${overdue}; automatic rotation is off: turn it on (aws secretsmanager rotate-secret --secret-id ${this.secret} ` +
        `--rotation-rules AutomaticallyAfterDays=${this.maxAgeDays})`
  }
}

/**
 * The Vault token could not be renewed (nor replaced by a new login) and the end of its life is
 * near: a third of its TTL or less is left, and it is retried with backoff until it expires, after
 * which Vault reads fail (a static `VAULT_TOKEN`) or wait for a new login. Detected from
 * `takumi_vault_token_expiring_total` of `@takumi/secrets` (`SecretMetrics.vaultTokenExpiring`).
 *
 * @since 0.1.0
 * @category alerts
 */
export class VaultTokenExpiring extends Schema.TaggedClass<VaultTokenExpiring>()("VaultTokenExpiring", {
  backend: Schema.Literal("vault"),
  /** failed renewals or logins since the previous check */
  failures: Schema.Number
}) {
  get message(): string {
    return `The Vault token could not be renewed or replaced ${this.failures} time(s) and is near its end: ` +
      "check Vault's health and the login's inputs (VAULT_AUTH_METHOD), or give a live VAULT_TOKEN, before it expires"
  }
}

/**
 * Every alert kind.
 *
 * @since 0.1.0
 * @category models
 */
export type SecurityAlert =
  | RepeatedAuthenticationFailures
  | UnencryptedConnection
  | PoolNearExhaustion
  | SlowQuery
  | CertificateExpiringSoon
  | ReadReplicaFailedOver
  | ReadReplicaRestored
  | SecretServedStale
  | PrimaryChanged
  | CredentialRotationOverdue
  | VaultTokenExpiring

/**
 * The alerts service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /**
   * every alert raised from the moment the stream is run (each run is its own subscription),
   * preceded by the last 16 raised before it (the startup alerts, for a subscriber started with
   * the program)
   */
  readonly stream: Stream.Stream<SecurityAlert>
  /** a subscription, for the scope: the last 16 alerts, then everything raised after this call */
  readonly subscribe: Effect.Effect<Queue.Dequeue<SecurityAlert>, never, Scope.Scope>
  /** raises an alert: logs it, counts it, publishes it */
  readonly publish: (alert: SecurityAlert) => Effect.Effect<void>
}

/**
 * The alerts of the database client.
 *
 * @since 0.1.0
 * @category tags
 */
export class SecurityAlerts extends Context.Tag("@takumi/db/SecurityAlerts")<SecurityAlerts, Service>() {}

/** What a log line of the alert is annotated with, besides `alert`. */
const whereOf = (alert: SecurityAlert): Record<string, string | number> =>
  "host" in alert ? { host: alert.host, port: alert.port } : { backend: alert.backend }

/** Alerts kept for a subscriber that lags behind; older ones are dropped first (they are logged anyway). */
const subscriberCapacity = 1024

/**
 * The most recent alerts a new subscriber receives first: a subscriber started with the program
 * (after the layer is built) still sees the alerts of startup — an expiring certificate, a
 * plaintext connection — which are raised before anyone can subscribe.
 */
const replayed = 16

/**
 * Makes the alerts service, scoped (closing the scope ends every subscriber's stream).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Service, never, Scope.Scope> = Effect.gen(function*() {
  // The PubSub is made by the first alert or subscriber, not here: a sliding PubSub of 1024
  // preallocates its ring (about a tenth of a millisecond of CPU on a 2-core VM), and most
  // clients start without raising or reading an alert. Nothing is lost: until it exists nothing
  // was published, so the replay is the same.
  let pubsub: PubSub.PubSub<SecurityAlert> | undefined
  let closed = false
  const made: Effect.Effect<PubSub.PubSub<SecurityAlert>> = Effect.suspend(() =>
    pubsub !== undefined ? Effect.succeed(pubsub) : Effect.flatMap(
      PubSub.sliding<SecurityAlert>({ capacity: subscriberCapacity, replay: replayed }),
      (created) => {
        // another fiber made one meanwhile (the runtime may yield between any two steps): use that
        if (pubsub !== undefined) return Effect.as(PubSub.shutdown(created), pubsub)
        pubsub = created
        // made after the scope closed (a late subscriber): shut at once, as the eager one would be
        return closed ? Effect.as(PubSub.shutdown(created), created) : Effect.succeed(created)
      }
    )
  )
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      closed = true
      return pubsub === undefined ? Effect.void : PubSub.shutdown(pubsub)
    })
  )
  const publish = (alert: SecurityAlert): Effect.Effect<void> =>
    Effect.logWarning(alert.message).pipe(
      Effect.annotateLogs({ alert: alert._tag, ...whereOf(alert) }),
      Effect.zipRight(Metric.increment(Metric.tagged(DbMetrics.securityAlerts, DbMetrics.kindTag, alert._tag))),
      Effect.zipRight(Effect.flatMap(made, (created) => PubSub.publish(created, alert))),
      Effect.asVoid
    )
  return {
    stream: Stream.unwrap(Effect.map(made, (created) => Stream.fromPubSub(created))),
    subscribe: Effect.flatMap(made, PubSub.subscribe),
    publish
  }
})

/**
 * A standalone alerts service (what `SecureSqlClient.layer` provides is its own; use this for
 * code that raises or consumes alerts without a database, e.g. in tests).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<SecurityAlerts> = Layer.scoped(SecurityAlerts, make)
