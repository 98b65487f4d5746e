/**
 * Dynamic database credentials in the pool (Vault `VAULT_DB_ROLE`, see @takumi/secrets
 * `DatabaseCredentials`): each new connection takes the newest user name and password together,
 * and connections on an older pair are retired when a new pair is published — never under a
 * statement.
 *
 * - `pg` reads `user` once, when a client is constructed, and the password when the server asks
 *   for it. The client class here puts the newest pair into the client's configuration in its
 *   constructor (one synchronous read), so the user and the password of one connection always
 *   belong to the same lease, whatever rollover happens while it connects.
 * - Retiring is pg-pool's own max-lifetime machinery (the one `DB_MAX_LIFETIME` uses): a client
 *   in its `_expired` set is closed when it is released instead of going back to the idle list;
 *   one that is idle at the rollover is removed at once. A client that is checked out later with
 *   an old pair (it was connecting during the rollover) is marked when pg-pool hands it out.
 *   These are pg-pool 3 internals (`_idle`, `_expired`, `_remove`), checked at run time: if they
 *   change, old connections are no longer retired early, and the pool notices at the next
 *   rollover (a warning) instead of failing.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Pg from "pg"
import type { DatabaseCredentials } from "@takumi/secrets"

/** The pairs a pool's connections draw from, read synchronously (a `Ref` read). */
export interface DynamicSource {
  readonly latest: () => DatabaseCredentials.DatabaseCredential
  readonly changes: Stream.Stream<DatabaseCredentials.DatabaseCredential>
}

/** Makes the synchronous source over the backend's `DatabaseCredentials`. */
export const makeSource = (credentials: DatabaseCredentials.DatabaseCredentials): Effect.Effect<DynamicSource> =>
  Effect.map(Effect.runtime<never>(), (runtime) => ({
    latest: () => Runtime.runSync(runtime)(credentials.current),
    changes: credentials.changes
  }))

/** The generation of the pair each client of a pool connected with. */
export type Generations = WeakMap<Pg.Client, number>

/**
 * `Base` with the newest pair as its user and password. The password stays `Redacted` until pg
 * asks for it (a function, called once, when the server requests a password).
 */
export const withDynamicCredentials = (
  Base: typeof Pg.Client,
  source: DynamicSource,
  generations: Generations
): typeof Pg.Client =>
  class extends Base {
    constructor(config?: string | Pg.ClientConfig) {
      const pair = source.latest()
      super({
        ...(typeof config === "object" ? config : {}),
        user: pair.username,
        password: () => Redacted.value(pair.password)
      })
      generations.set(this, pair.generation)
    }
  }

/** The pg-pool 3 internals retiring uses, read afresh each time (pg-pool replaces its arrays). */
interface PoolInternals {
  readonly clients: () => ReadonlyArray<Pg.PoolClient>
  readonly idle: () => ReadonlyArray<Pg.PoolClient>
  readonly expired: WeakSet<Pg.PoolClient>
  readonly remove: (client: Pg.PoolClient) => void
}

const arrayField = (pool: Pg.Pool, name: "_clients" | "_idle"): ReadonlyArray<unknown> | undefined => {
  const value: unknown = Reflect.get(pool, name)
  return Array.isArray(value) ? value : undefined
}

const isPoolClient = (value: unknown): value is Pg.PoolClient => typeof value === "object" && value !== null

const clientOfIdleItem = (item: unknown): ReadonlyArray<Pg.PoolClient> => {
  const client: unknown = typeof item === "object" && item !== null ? Reflect.get(item, "client") : undefined
  return isPoolClient(client) ? [client] : []
}

const internalsOf = (pool: Pg.Pool): PoolInternals | undefined => {
  const expired: unknown = Reflect.get(pool, "_expired")
  const remove: unknown = Reflect.get(pool, "_remove")
  if (
    arrayField(pool, "_clients") === undefined || arrayField(pool, "_idle") === undefined ||
    !(expired instanceof WeakSet) || typeof remove !== "function"
  ) return undefined
  return {
    clients: () => (arrayField(pool, "_clients") ?? []).filter(isPoolClient),
    idle: () => (arrayField(pool, "_idle") ?? []).flatMap(clientOfIdleItem),
    expired,
    remove: (client) => void Reflect.apply(remove, pool, [client])
  }
}

/**
 * Retires, from now on, every connection of `pool` on a pair older than the newest: idle ones at
 * each rollover, checked-out ones when they are released. Scoped: the watching fiber ends with
 * the pool's scope.
 */
export const retireOnRollover = (
  pool: Pg.Pool,
  source: DynamicSource,
  generations: Generations
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const internals = internalsOf(pool)
    const isOld = (client: Pg.Client) => (generations.get(client) ?? 0) < source.latest().generation
    if (internals === undefined) {
      return yield* Effect.logWarning(
        "pg-pool's internals are not the ones expected (pg-pool 3): connections on an old dynamic credential " +
          "are not retired early and end with their lease"
      )
    }
    // a client that connected with an old pair while the rollover ran: closed after this use
    pool.on("acquire", (client) => {
      if (isOld(client)) internals.expired.add(client)
    })
    const sweep = Effect.sync(() => {
      const idle = new Set(internals.idle())
      let retired = 0
      for (const client of internals.clients()) {
        if (!isOld(client)) continue
        retired++
        internals.expired.add(client)
        if (idle.has(client)) internals.remove(client)
      }
      return retired
    })
    yield* Effect.forkScoped(
      Stream.runForEach(source.changes, (newest) =>
        Effect.flatMap(sweep, (retired) =>
          Effect.logDebug("Retiring connections on the previous database credential").pipe(
            Effect.annotateLogs({ generation: newest.generation, retired })
          )))
    )
  })
