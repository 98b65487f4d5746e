/**
 * Vault dynamic database credentials (`VAULT_DB_ROLE`): the lifecycle of the leases.
 *
 * - At start, `GET /v1/<mount>/creds/<role>` gives a user name and password with a lease; the
 *   backend fails to build when Vault refuses (nothing to connect with).
 * - While the lease can still be extended, it is renewed (`PUT /v1/sys/leases/renew`, increment =
 *   the lease's first TTL) when 2/3 of its remaining life has passed, so a renewal that fails has
 *   a third of the TTL left to be retried by the next step.
 * - Vault caps every renewal at the role's max TTL; a renewal that grants less than the increment
 *   asked for (or a lease that is not renewable) has reached its final end. When a third of the
 *   first TTL is left before that end, a new pair is read and published (`generation` + 1): new
 *   connections use it, and the pool retires connections on the old pair as they become idle,
 *   with that third of the TTL to drain before Vault ends the old lease (and, with the default
 *   revocation statements, drops the old role).
 * - A renewal refused or failing makes the rollover happen at once (a revoked lease is not found;
 *   a transient failure is better answered by a fresh lease than by betting on the old one).
 *   A new pair that cannot be read is retried on a capped exponential schedule; the old pair stays
 *   in use meanwhile.
 * - When the scope closes (the layer's finalizer), every lease still alive is revoked
 *   (`PUT /v1/sys/leases/revoke`), each bounded by the request timeout.
 *
 * Margin: one third of the first TTL (a role with `default_ttl=1h` rolls over 20 min before
 * `max_ttl`). Short TTLs shorten the drain time with it: give the role a `default_ttl` at least
 * three times the longest statement or transaction the application runs.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { DatabaseCredential, DatabaseCredentials } from "../../DatabaseCredentials.js"
import { type SecretError, SecretMalformed, SecretNotFound } from "../../SecretError.js"

/** @internal */
export interface DynamicCredentialsOptions {
  /** `GET /v1/<apiPath>` with the backend's token, classified */
  readonly read: (apiPath: string, key: string) => Effect.Effect<unknown, SecretError>
  /** `POST /v1/<apiPath>` with a JSON body */
  readonly write: (apiPath: string, key: string, body: Readonly<Record<string, unknown>>) => Effect.Effect<unknown, SecretError>
  /** `VAULT_DB_MOUNT` */
  readonly mount: string
  /** `VAULT_DB_ROLE` */
  readonly role: string
  readonly requestTimeout: Duration.DurationInput
}

/** What errors and logs name: the variable that chose this path. */
const key = "VAULT_DB_ROLE"

/** The share of the remaining life after which a lease is renewed. */
const renewFraction = 2 / 3
/** The share of the first TTL left before the final end at which a new pair is fetched. */
const rolloverMarginFraction = 1 / 3

interface Lease {
  readonly credential: DatabaseCredential
  /** the lease's first TTL: the increment every renewal asks for */
  readonly ttlMillis: number
  /** no renewal can extend it further (capped at the max TTL, or not renewable) */
  readonly final: boolean
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const malformed = (apiPath: string, what: string) =>
  new SecretMalformed({
    backend: "vault",
    key,
    message: `Vault answered ${apiPath} without ${what}. Fix: VAULT_DB_MOUNT must name a database secrets engine ` +
      "(vault secrets enable database) and VAULT_DB_ROLE one of its dynamic roles (vault read <mount>/roles/<role>)."
  })

/** A creds answer: `lease_id`, `lease_duration` (s), `renewable`, `data.username`, `data.password`. */
const parseCreds = (apiPath: string, body: unknown, generation: number, now: number): Effect.Effect<Lease, SecretMalformed> => {
  const data = isRecord(body) && isRecord(body.data) ? body.data : undefined
  if (!isRecord(body) || data === undefined) return Effect.fail(malformed(apiPath, "a data object"))
  const { lease_duration: ttl, lease_id: leaseId, renewable } = body
  const { password, username } = data
  if (typeof username !== "string" || username.length === 0 || typeof password !== "string" || password.length === 0) {
    return Effect.fail(malformed(apiPath, "data.username and data.password"))
  }
  if (typeof leaseId !== "string" || leaseId.length === 0 || typeof ttl !== "number" || !(ttl > 0)) {
    return Effect.fail(malformed(apiPath, "a lease (lease_id and a positive lease_duration)"))
  }
  const ttlMillis = ttl * 1000
  return Effect.succeed({
    credential: { username, password: Redacted.make(password), generation, leaseId, expiresAt: new Date(now + ttlMillis) },
    ttlMillis,
    final: renewable !== true
  })
}

/** Waits until `at` (epoch ms) by the Clock. */
const sleepUntil = (at: number) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Duration.millis(Math.max(0, at - now))))

/**
 * Reads the first pair, then keeps the leases alive and rolls them over in a fiber of the scope;
 * closing the scope stops it and revokes every lease still alive.
 *
 * @internal
 */
export const make = (options: DynamicCredentialsOptions): Effect.Effect<DatabaseCredentials, SecretError, Scope.Scope> =>
  Effect.gen(function*() {
    const credsPath = `${options.mount}/creds/${options.role}`
    const annotations = { mount: options.mount, role: options.role }

    const issue = (generation: number) =>
      Effect.gen(function*() {
        const body = yield* options.read(credsPath, key).pipe(Effect.catchTag("SecretNotFound", (error) =>
          // the KV wording of the fix (VAULT_PATH, vault kv put) does not apply here
          Effect.fail(
            new SecretNotFound({
              backend: "vault",
              key,
              message: `${error.message.replace(/ Fix: .*$/s, "")} Fix: check VAULT_DB_ROLE=${options.role} and ` +
                `VAULT_DB_MOUNT=${options.mount}: the mount must be a database secrets engine with that role ` +
                `(vault read ${options.mount}/roles/${options.role}).`
            })
          )))
        return yield* parseCreds(credsPath, body, generation, yield* Clock.currentTimeMillis)
      }).pipe(Effect.withSpan("SecretsBackend.vault.databaseCredentials.issue", { attributes: { ...annotations, generation } }))

    /** Leases not yet revoked or expired, by id: what the finalizer revokes. */
    const alive = yield* Ref.make(new Map<string, Lease>())
    const revoke = (leaseId: string) =>
      options.write("sys/leases/revoke", key, { lease_id: leaseId }).pipe(
        Effect.timeout(options.requestTimeout),
        Effect.tapError((error) =>
          Effect.logWarning(
            `Could not revoke the Vault database lease ${leaseId}: ${error.message} It ends by itself at its TTL.`
          )
        ),
        Effect.ignore
      )
    yield* Effect.addFinalizer(() =>
      Ref.get(alive).pipe(
        Effect.flatMap((leases) => Effect.forEach(leases.keys(), revoke, { discard: true, concurrency: "unbounded" })),
        Effect.annotateLogs(annotations)
      )
    )

    const first = yield* issue(1)
    yield* Ref.update(alive, (leases) => new Map(leases).set(first.credential.leaseId, first))
    const current = yield* SubscriptionRef.make(first.credential)

    /** The lease after a renewal: its new end, final when Vault granted less than asked. */
    const renew = (lease: Lease) =>
      Effect.gen(function*() {
        const increment = Math.round(lease.ttlMillis / 1000)
        const body = yield* options.write("sys/leases/renew", key, { lease_id: lease.credential.leaseId, increment })
        const granted = isRecord(body) && typeof body.lease_duration === "number" ? body.lease_duration : 0
        const now = yield* Clock.currentTimeMillis
        const renewed: Lease = {
          ...lease,
          credential: { ...lease.credential, expiresAt: new Date(now + granted * 1000) },
          final: granted < increment || (isRecord(body) && body.renewable !== true)
        }
        yield* SubscriptionRef.update(current, (newest) =>
          newest.leaseId === renewed.credential.leaseId ? renewed.credential : newest)
        yield* Ref.update(alive, (leases) => new Map(leases).set(renewed.credential.leaseId, renewed))
        yield* Effect.logDebug("Vault database lease renewed").pipe(
          Effect.annotateLogs({ lease: lease.credential.leaseId, ttlSeconds: granted, final: renewed.final })
        )
        return renewed
      })

    /** Forgets a lease once Vault has ended it (its final end has passed). */
    const expireLater = (lease: Lease) =>
      sleepUntil(lease.credential.expiresAt.getTime()).pipe(
        Effect.zipRight(Ref.update(alive, (leases) => {
          const next = new Map(leases)
          next.delete(lease.credential.leaseId)
          return next
        }))
      )

    const rollover = (old: Lease) =>
      Effect.gen(function*() {
        const next = yield* issue(old.credential.generation + 1).pipe(
          Effect.tapError((error) => Effect.logWarning(`Could not read new Vault database credentials: ${error.message}`)),
          // 200 ms doubling, capped at 10 s (union takes the shorter delay); it never gives up, so
          // `orDie` only narrows the type
          Effect.retry(
            Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("10 seconds")), Schedule.jittered)
          ),
          Effect.orDie
        )
        yield* Ref.update(alive, (leases) => new Map(leases).set(next.credential.leaseId, next))
        yield* SubscriptionRef.set(current, next.credential)
        yield* Effect.logInfo("Vault database credentials rolled over; connections on the old pair are retired as they become idle")
          .pipe(Effect.annotateLogs({
            generation: next.credential.generation,
            user: next.credential.username,
            previousUser: old.credential.username,
            previousLeaseEnds: old.credential.expiresAt.toISOString()
          }))
        yield* Effect.forkScoped(expireLater(old))
        return next
      })

    /** One step of a lease's life: renew it when it can be extended, else roll over before its end. */
    const step = (lease: Lease): Effect.Effect<Lease, never, Scope.Scope> =>
      Effect.gen(function*() {
        const end = lease.credential.expiresAt.getTime()
        if (lease.final) {
          yield* sleepUntil(end - lease.ttlMillis * rolloverMarginFraction)
          return yield* rollover(lease)
        }
        const now = yield* Clock.currentTimeMillis
        yield* sleepUntil(now + (end - now) * renewFraction)
        return yield* renew(lease).pipe(
          Effect.catchAll((error) =>
            Effect.logWarning(`Renewing the Vault database lease failed (${error.message}); reading a new pair now`).pipe(
              Effect.zipRight(rollover(lease))
            )
          )
        )
      })

    const maintain = (lease: Lease): Effect.Effect<never, never, Scope.Scope> =>
      Effect.flatMap(step(lease), maintain)

    yield* Effect.forkScoped(maintain(first).pipe(Effect.annotateLogs(annotations)))

    return { current: SubscriptionRef.get(current), changes: current.changes }
  })
