/**
 * `DB_MAX_LIFETIME`: every connection of a pool is retired after its lifetime, less a random
 * jitter (HikariCP's scheme: up to 2.5 % shorter), so that the connections a pool opened together
 * at startup or after an outage do not all reconnect in the same second.
 *
 * The retiring itself is pg-pool's `maxLifetimeSeconds` machinery, which already does the part that
 * is hard to do from outside the pool: a connection whose time is up while it is checked out is
 * marked and closed when it is released (never under a statement or inside a transaction); one
 * that is idle at that moment is taken out of the idle list and closed. pg-pool reads one
 * lifetime for all connections, though, at the moment each connection is established
 * (`_afterConnect` reads `options.maxLifetimeSeconds` twice, synchronously). So the option is
 * made a getter that draws a fresh jittered lifetime on every read: each connection gets its own,
 * with no race between connections completing at the same time (pg-pool reads it in one
 * synchronous step per connection).
 *
 * The pool does not open a replacement by itself: the next caller that finds no idle connection
 * opens one (pg-pool's `min` does not pre-warm either).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type * as Pg from "pg"
import type { DbSettings } from "@takumi/config"

/** HikariCP's jitter: a lifetime is shortened by a random fraction of at most 1/40. */
export const maxJitterFraction = 0.025

/**
 * The lifetime of one connection in seconds (pg-pool's unit; fractions are honoured, it
 * multiplies by 1000 for `setTimeout`), for `random` uniform in [0, 1); 0 when there is none.
 */
export const lifetimeSeconds = (settings: Pick<DbSettings, "maxLifetime">, random: number): number => {
  const millis = Duration.toMillis(settings.maxLifetime)
  if (!Number.isFinite(millis) || millis <= 0) return 0
  return (millis * (1 - maxJitterFraction * random)) / 1000
}

/**
 * Gives every connection the pool opens from now on its own jittered lifetime. Call it once, on
 * the freshly built pool, before its first connection.
 */
export const applyMaxLifetime = (
  pool: Pg.Pool,
  settings: Pick<DbSettings, "maxLifetime">,
  random: () => number
): void => {
  if (lifetimeSeconds(settings, 0) === 0) return
  Object.defineProperty(pool.options, "maxLifetimeSeconds", {
    get: () => lifetimeSeconds(settings, random()),
    enumerable: true,
    configurable: true
  })
}
