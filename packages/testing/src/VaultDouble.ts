/**
 * A protocol-level test double of HashiCorp Vault's KV v2 secrets engine: a local HTTP(S)
 * server on 127.0.0.1 that answers `GET /v1/<mount>/data/<path>` with Vault's documented JSON
 * envelope, for the real `node-vault` client. It also issues and checks tokens: the AppRole,
 * Kubernetes and JWT logins (`POST /v1/auth/<mount>/login`), `auth/token/lookup-self`,
 * `renew-self` and `revoke-self`, with a TTL and a max TTL per token and 403 `permission denied`
 * once a token has expired. It is not Vault: no policies beyond "live token or 403", in-memory storage,
 * single-segment KV mounts, and a Kubernetes or JWT login compares the JWT with the configured one
 * (no TokenReview, no signature check).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Http from "./internal/httpDouble.js"
import type * as authInternal from "./internal/vaultAuthDouble.js"
import * as internal from "./internal/vaultDouble.js"
import * as DatabaseEngine from "./internal/vaultDatabaseEngine.js"
import * as LeakGuard from "./LeakGuard.js"

/**
 * A failure the double answers with: `forbidden` (403 `permission denied`), `not-found`
 * (404 `{"errors":[]}`), `internal-error` (500), `sealed` (503 `Vault is sealed`), `throttled`
 * (429 `rate limit quota exceeded`, as Vault answers when a rate-limit quota is exceeded), `hang`
 * (accept and never answer), `reset` (destroy the connection), `huge-body` (a 200 that starts
 * like a KV v2 answer and streams filler, chunked, until the client hangs up or 1 GiB is sent) or
 * `huge-body-with-length` (the same, declaring `Content-Length: 1073741824` up front). The huge
 * bodies are streamed, never built in memory; `hugeBodyBytesSent` counts what was sent.
 *
 * @since 0.1.0
 * @category models
 */
export type VaultFault = internal.Fault

/**
 * A login the double accepts: AppRole (`role_id` and `secret_id`) or Kubernetes / JWT (`role` and
 * `jwt`), at `auth/<mount>/login` (`mount` defaults to the method's name). Anything else is
 * answered 400 like Vault (`invalid role or secret ID`, `invalid role name`, a JWT that does not
 * validate).
 *
 * @since 0.1.0
 * @category models
 */
export type VaultLogin = authInternal.LoginConfig

/**
 * A token's lifetime: `ttlSeconds` (0: never expires), `maxTtlSeconds` from issue (0: none; a
 * renewal past it is capped, with Vault's warning), `renewable` (default true).
 *
 * @since 0.1.0
 * @category models
 */
export type VaultTokenLifetime = authInternal.TokenLifetime

/**
 * One request the double received.
 *
 * @since 0.1.0
 * @category models
 */
export type VaultRequest = internal.RecordedRequest

/**
 * @since 0.1.0
 * @category models
 */
export interface VaultDouble {
  /** `https://127.0.0.1:<port>` (or `http://` without TLS): the `VAULT_ADDR`. */
  readonly address: string
  /** Writes a new version of `path` (mount first: `secret/takumi/production`); returns the version number. */
  readonly put: (path: string, data: Readonly<Record<string, unknown>>) => Effect.Effect<number>
  /** Forgets every version of `path`: later reads get 404. */
  readonly remove: (path: string) => Effect.Effect<void>
  /**
   * Changes the token the double accepts (every other token, logins' included, then gets 403,
   * like a revoked token); the new one never expires unless `lifetime` says otherwise.
   */
  readonly setToken: (token: string, lifetime?: VaultTokenLifetime) => Effect.Effect<void>
  /** Revokes one token (a login's, or the configured one): it gets 403 from now on. */
  readonly revokeToken: (token: string) => Effect.Effect<void>
  /** Tokens revoked through `auth/token/revoke-self` so far. */
  readonly revocations: Effect.Effect<number>
  /** Successful logins so far with `method` (`approle`, `kubernetes`, `jwt`). */
  readonly loginCount: (method: VaultLogin["method"]) => Effect.Effect<number>
  /** While `true`, `auth/token/renew-self` answers 500 (a Vault that cannot renew). */
  readonly failRenewals: (fail: boolean) => Effect.Effect<void>
  /**
   * Answers every request with `307 Location: <address><same path>`, like a standby node without
   * request forwarding pointing at the active node; `undefined` stops redirecting.
   */
  readonly redirectTo: (address: string | undefined) => Effect.Effect<void>
  /** Answers every request for `path` (or every request, without one) with `fault`. */
  readonly fault: (fault: VaultFault, path?: string) => Effect.Effect<void>
  /** Removes every fault. */
  readonly clearFaults: Effect.Effect<void>
  /** Answers `GET /v1/<mount>/metadata/<path>` with 403, as for a policy without `metadata` read. */
  readonly denyMetadata: (path: string) => Effect.Effect<void>
  /** Backdates the current version of `path` (its `created_time`, and the metadata's `updated_time`). */
  readonly setCurrentVersionTime: (path: string, at: Date) => Effect.Effect<void>
  /**
   * Body bytes the `huge-body` faults have handed to the socket so far: far below 1 GiB means the
   * client stopped reading early.
   */
  readonly hugeBodyBytesSent: Effect.Effect<number>
  /** Every request received so far, oldest first, headers included. */
  readonly requests: Effect.Effect<ReadonlyArray<VaultRequest>>
  /** How many requests were received (for one logical path, when given). */
  readonly requestCount: (path?: string) => Effect.Effect<number>
}

/**
 * A role of the double's database secrets engine: the statements that create its user (Vault's
 * templates `{{name}}`, `{{password}}`, `{{expiration}}`), the lease's TTL and its max TTL.
 *
 * @since 0.1.0
 * @category models
 */
export type VaultDatabaseRole = DatabaseEngine.DatabaseRole

/**
 * One lease the database secrets engine issued, as it stands now.
 *
 * @since 0.1.0
 * @category models
 */
export interface VaultDatabaseLease {
  readonly leaseId: string
  readonly role: string
  /** the PostgreSQL role the lease created */
  readonly username: string
  readonly issuedAt: Date
  readonly expiresAt: Date
  readonly renewals: number
  /** sessions of its role still open when the lease was revoked or expired (the double terminated them) */
  readonly sessionsEnded: number
  /** when its PostgreSQL role was dropped, and why; `None` while it lives */
  readonly ended: Option.Option<{ readonly at: Date; readonly by: "revoke" | "expiry" }>
}

/**
 * The database secrets engine of a double made with `database`.
 *
 * @since 0.1.0
 * @category models
 */
export interface VaultDatabaseEngine {
  /** every lease issued so far, oldest first */
  readonly leases: Effect.Effect<ReadonlyArray<VaultDatabaseLease>>
  /** SQL steps that failed in PostgreSQL (creating, renewing or dropping a role); empty when all went well */
  readonly failures: Effect.Effect<ReadonlyArray<string>>
  /** Revokes a lease as an operator would (`vault lease revoke`): its role is dropped, renewals fail. */
  readonly revoke: (leaseId: string) => Effect.Effect<void>
}

/**
 * The double could not start.
 *
 * @since 0.1.0
 * @category errors
 */
export class VaultDoubleError extends Schema.TaggedError<VaultDoubleError>()("VaultDoubleError", {
  message: Schema.String
}) {}

/**
 * Starts the Vault double; it stops when the scope closes (hanging requests are cut).
 * Requests must carry a live `X-Vault-Token` (`token`, which lives `tokenLifetime` (default:
 * forever), or one a login issued, which lives `loginLifetime`) and, when `namespace` is given,
 * `X-Vault-Namespace: <namespace>`; otherwise the answer is 403 `permission denied`. Logins need
 * only the namespace. Token times follow the Effect `Clock` of the fiber that made the double, so
 * a test under `TestClock` expires tokens with `TestClock.adjust`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly token: string
  readonly namespace?: string
  readonly tls?: { readonly certPem: string; readonly keyPem: string }
  readonly tokenLifetime?: VaultTokenLifetime
  readonly logins?: ReadonlyArray<VaultLogin>
  /** default: 1 hour, renewable, no max TTL */
  readonly loginLifetime?: VaultTokenLifetime
}): Effect.Effect<VaultDouble, VaultDoubleError, Scope.Scope> =>
  Effect.map(makeWithState(options), ({ double }) => double)

/**
 * A Vault double that also acts as the database secrets engine against a real PostgreSQL server
 * (the harness's): `GET /v1/<mount>/creds/<role>` creates a PostgreSQL role with a random name and
 * password (registered with the leak guard), `VALID UNTIL` the lease's end, by the role's creation
 * statements; `PUT /v1/sys/leases/renew` extends the lease up to the role's max TTL (and the
 * role's `VALID UNTIL`); `PUT /v1/sys/leases/revoke` and the lease's expiry (real time) terminate
 * the role's sessions and drop it. Leases still alive when the scope closes are revoked.
 * `execute` runs SQL as the superuser, e.g. `(sql) => server.query(sql)` of a `PgTestServer`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWithDatabase = (options: {
  readonly token: string
  readonly namespace?: string
  readonly tls?: { readonly certPem: string; readonly keyPem: string }
  readonly database: {
    /** `database` unless given */
    readonly mount?: string
    readonly roles: Readonly<Record<string, VaultDatabaseRole>>
    readonly execute: (sql: string) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, unknown>
  }
}): Effect.Effect<VaultDouble & { readonly database: VaultDatabaseEngine }, VaultDoubleError, Scope.Scope> =>
  Effect.gen(function*() {
    const { double, state } = yield* makeWithState(options)
    const runtime = yield* Effect.runtime<never>()
    const engine = new DatabaseEngine.DatabaseEngine({
      mount: options.database.mount ?? "database",
      roles: options.database.roles,
      execute: (sql) => Runtime.runPromise(runtime)(options.database.execute(sql)),
      onPassword: (password) => LeakGuard.registerUnsafe(password, "VaultDouble database credential password"),
      now: () => state.now()
    })
    yield* Effect.addFinalizer(() => Effect.promise(() => engine.close()))
    state.database = engine
    const leases = Effect.sync(() =>
      [...engine.leases.values()].map((lease): VaultDatabaseLease => ({
        leaseId: lease.leaseId,
        role: lease.role,
        username: lease.username,
        issuedAt: new Date(lease.issuedAt),
        expiresAt: new Date(lease.expiresAt),
        renewals: lease.renewals,
        sessionsEnded: lease.sessionsEnded,
        ended: lease.endedAt === undefined || lease.endedBy === undefined
          ? Option.none()
          : Option.some({ at: new Date(lease.endedAt), by: lease.endedBy })
      }))
    )
    return {
      ...double,
      database: {
        leases,
        failures: Effect.sync(() => [...engine.failures]),
        revoke: (leaseId) => Effect.asVoid(Effect.promise(() => engine.revoke(leaseId, "revoke")))
      }
    }
  })

const makeWithState = (options: Parameters<typeof make>[0]): Effect.Effect<{ readonly double: VaultDouble; readonly state: internal.VaultState }, VaultDoubleError, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    yield* LeakGuard.register(options.token, "VaultDouble token")
    for (const login of options.logins ?? []) {
      yield* LeakGuard.register(login.method === "approle" ? login.secretId : login.jwt, `VaultDouble ${login.method} login secret`)
    }
    const state = new internal.VaultState(options.token, options.namespace, () => clock.unsafeCurrentTimeMillis(), {
      logins: options.logins ?? [],
      tokenLifetime: options.tokenLifetime ?? {},
      loginLifetime: options.loginLifetime ?? { ttlSeconds: 3600 }
    })
    const server = yield* Http.listen({ tls: options.tls, handle: state.handle }).pipe(
      Effect.mapError((message) => new VaultDoubleError({ message: `VaultDouble: ${message}` }))
    )
    const double: VaultDouble = {
      address: server.url,
      put: (path, data) =>
        LeakGuard.registerPayload(data, `VaultDouble secret ${path}`).pipe(Effect.zipRight(Effect.sync(() => state.put(path, data)))),
      remove: (path) => Effect.sync(() => void state.secrets.delete(path)),
      setToken: (token, lifetime) =>
        LeakGuard.register(token, "VaultDouble token").pipe(Effect.andThen(() => {
          state.tokens.clear()
          state.tokens.add(token, lifetime)
        })),
      revokeToken: (token) => Effect.sync(() => state.tokens.revoke(token)),
      revocations: Effect.sync(() => state.tokens.revocations),
      loginCount: (method) => Effect.sync(() => state.tokens.logins.get(method) ?? 0),
      failRenewals: (fail) => Effect.sync(() => void (state.tokens.renewalFails = fail)),
      redirectTo: (address) => Effect.sync(() => void (state.redirect = address)),
      fault: (fault, path) => Effect.sync(() => void state.faults.set(path, fault)),
      clearFaults: Effect.sync(() => state.faults.clear()),
      denyMetadata: (path) => Effect.sync(() => void state.metadataDenied.add(path)),
      setCurrentVersionTime: (path, at) => Effect.sync(() => void state.setCurrentVersionTime(path, at.getTime())),
      hugeBodyBytesSent: Effect.sync(() => state.hugeBodyBytesSent),
      requests: Effect.sync(() => [...state.requests]),
      requestCount: (path) =>
        Effect.sync(() =>
          path === undefined ? state.requests.length : state.requests.filter((request) => request.path === path).length
        )
    }
    return { double, state }
  })
