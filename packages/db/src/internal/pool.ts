/**
 * Building a `pg.Pool` for one target (the primary, or a read replica): every connection option
 * set explicitly from the settings, the password from the secrets backend, one retry with a
 * re-read secret on 28P01, and error listeners so that no idle or checked-out connection dying
 * can crash the process.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import type * as Tls from "node:tls"
import * as Pg from "pg"
import type { DbSettings, ServerAddress } from "@takumi/config"
import { type AcquireError, classifyConnectError, classifyRuntimeError, type ConnectTarget, isAuthenticationFailure } from "./classify.js"
import * as AuthPolicy from "./authPolicy.js"
import { applyMaxLifetime } from "./connectionLifetime.js"
import { withSocketClosedOnFailure } from "./failedConnect.js"
import type { Credentials } from "./credentials.js"
import { type HostChooser, type HostRoute, makeChooser } from "./hosts/chooser.js"
import { withHostChoice } from "./hosts/client.js"
import { probeSession } from "./hosts/probe.js"
import * as DynamicCredentials from "./dynamicCredentials.js"
import { Monitor } from "./monitor.js"
import { PrimaryChanged } from "../SecurityAlerts.js"
import * as Pooler from "./pooler.js"
import { withTypedLosses } from "./connectionLoss.js"
import { withStatements } from "./statement/connection.js"
import { timeoutOptions } from "./statementTimeout.js"

/**
 * When the settings carry no usable connect timeout (zero, negative, infinite) this one applies:
 * `pg` treats 0 as "wait forever", and acquiring a connection must never wait forever.
 * 2000 ms is the requirements' default for `DB_CONNECTION_TIMEOUT`.
 */
export const fallbackConnectTimeoutMillis = 2000

/** The connect timeout in whole milliseconds, never 0 (which `pg` reads as "no timeout"). */
export const connectTimeoutMillis = (settings: DbSettings): number => {
  const millis = Duration.toMillis(settings.connectTimeout)
  return Number.isFinite(millis) && millis >= 1 ? Math.ceil(millis) : fallbackConnectTimeoutMillis
}

const idleTimeoutMillis = (settings: DbSettings): number => {
  const millis = Duration.toMillis(settings.idleTimeout)
  // 0 would keep idle connections forever; pg's own default is 10 s, the requirements' 30 s
  return Number.isFinite(millis) && millis >= 1 ? Math.ceil(millis) : 30_000
}

/** Everything needed to build a pool for one server. */
export interface PoolOptions {
  readonly settings: DbSettings
  /** the server: the primary's `settings.host`/`port`, or a replica's */
  readonly host: string
  readonly port: number
  /** from `makeTlsOptions` */
  readonly ssl: Tls.ConnectionOptions | false
  readonly credentials: Credentials
  /**
   * The primary's pool over several hosts (`DB_HOST` with more than one, or
   * `DB_TARGET_SESSION_ATTRS` other than `any`): every listed host with its own TLS options. Each
   * connection then goes where the chooser finds a fitting server (internal/hosts/); `host`/`port`
   * stay the first host, which errors name.
   */
  readonly routes?: ReadonlyArray<HostRoute> | undefined
}

/** The target of a pool, as the error classification needs it. */
export const targetOf = (options: Pick<PoolOptions, "settings" | "host" | "port">): ConnectTarget => ({
  host: options.host,
  port: options.port,
  user: options.settings.user,
  database: options.settings.database,
  connectTimeoutMillis: connectTimeoutMillis(options.settings),
  poolMax: options.settings.pool.max
})

/**
 * The `pg` configuration. Every field `pg` would otherwise take from a `PG*` environment
 * variable is set to a non-empty value here (pg's fallback triggers on any falsy value), and
 * there is no `connectionString`, whose `sslmode` would replace the whole `ssl` object.
 */
export const poolConfig = (options: PoolOptions): Pg.PoolConfig & { readonly replication?: string } => {
  const { settings } = options
  return {
    host: options.host,
    port: options.port,
    database: settings.database,
    user: settings.user,
    password: options.credentials.password,
    ssl: options.ssl,
    // `PGSSLNEGOTIATION=direct` must not change how TLS starts
    sslnegotiation: "postgres",
    application_name: settings.applicationName,
    fallback_application_name: settings.applicationName,
    client_encoding: "UTF8",
    // `options` and `replication` keep PGOPTIONS / PGREPLICATION out; not sent to PgBouncer,
    // which refuses them (internal/pooler.ts)
    ...Pooler.serverOnlyParameters(settings),
    connectionTimeoutMillis: connectTimeoutMillis(settings),
    idleTimeoutMillis: idleTimeoutMillis(settings),
    min: settings.pool.min,
    max: settings.pool.max,
    keepAlive: true,
    // DB_STATEMENT_TIMEOUT and DB_IDLE_IN_TRANSACTION_TIMEOUT as startup parameters, DB_QUERY_TIMEOUT
    // as pg's own timer; a zero bound is not sent (internal/statementTimeout.ts)
    ...timeoutOptions(settings),
    // SCRAM-SHA-256-PLUS when the server offers it over TLS (DB_CHANNEL_BINDING); the refusals are
    // the client class's (internal/authPolicy.ts)
    enableChannelBinding: AuthPolicy.enableChannelBinding(settings),
    allowExitOnIdle: false
  }
}

type ConnectCallback = Parameters<Pg.Pool["connect"]>[0]

/** Node-style completion of one connection attempt. */
type Completion<A> = (err: Error | undefined, value: A | undefined) => void

/** What the stale-password retry reports while it works. */
interface StalePasswordHooks {
  readonly credentials: Credentials
  /** false once the retry would be pointless (the pool is ending) */
  readonly canRetry: () => boolean
  /** a 28P01 is about to be retried with a re-read secret */
  readonly onStalePassword: () => void
  /** every failed attempt, the one about to be retried included (connection-error metrics) */
  readonly onConnectError: (err: Error) => void
  /** the failure handed to the caller, after the retry if there was one (the failed-authentication alert) */
  readonly onGaveUp: (err: Error) => void
}

/**
 * The one place that does "connect; on 28P01 invalidate the cached secret and retry once; on a
 * second 28P01 try the pending value of a rotation in progress once", for the pool's connections
 * and for the fresh clients of the health probes alike: the password was rotated and the cached
 * value is stale, or (AWS Secrets Manager, between `setSecret` and `finishSecret`) the database
 * already has the AWSPENDING value. Connections already open are never touched: PostgreSQL keeps
 * them authenticated.
 */
const connectRetryingStalePassword = <A>(
  attempt: (done: Completion<A>) => void,
  hooks: StalePasswordHooks,
  done: Completion<A>
): void => {
  const giveUp = (err: Error) => {
    hooks.onGaveUp(err)
    done(err, undefined)
  }
  // what to do before each retry, given the password choice the refused attempt began with:
  // re-read the secret, then (a rotation in progress) try its pending value
  const fallbacks: ReadonlyArray<(choice: number) => Promise<boolean>> = [
    () => hooks.credentials.invalidate().then(() => true),
    hooks.credentials.usePending
  ]
  const run = (index: number) => {
    const choice = hooks.credentials.choice()
    attempt((err, value) => {
      if (err === undefined) return done(undefined, value)
      hooks.onConnectError(err)
      const fallback = fallbacks[index]
      if (fallback === undefined || !isAuthenticationFailure(err) || !hooks.canRetry()) return giveUp(err)
      if (index === 0) hooks.onStalePassword()
      fallback(choice).then(
        (retry) => (retry ? run(index + 1) : giveUp(err)),
        () => giveUp(err)
      )
    })
  }
  run(0)
}

/** A pool built by `makePool`: a `pg.Pool` that can also open a connection outside its slots. */
export interface SecurePool extends Pg.Pool {
  /**
   * Opens a fresh client with the pool's options (not one of the pool's connections: its slots
   * may all be busy with healthy work), with the same stale-password retry as the pool. Returns
   * a function that abandons the attempt (a client that connects afterwards is closed).
   */
  readonly openClient: (done: Completion<Pg.Client>) => () => void
  /** with several hosts (`PoolOptions.routes`): where the writable server is; `undefined` for a pool to one server */
  readonly primaryHost: PrimaryHost | undefined
  /** whether `client` is one of this pool's connections (a transaction's client may be another pool's) */
  readonly owns: (client: Pg.ClientBase) => boolean
  /**
   * pg-pool's own checkout, without the wrappers of `connect` (this class's stale-password retry,
   * the resilience hook's retries): the fast path of SecureSqlClient's direct statements
   * (statement/run.ts), which allocates nothing per checkout. A failed attempt must be handed, from
   * within the callback, to `recover`.
   */
  checkout(callback: ConnectCallback): void
  /**
   * What `connect` does once its first attempt has failed with `first`: the stale-password retry,
   * then whatever the hooks on `connect` add (the resilience hook patches both); `callback` gets
   * the outcome.
   */
  recover(first: Error | null | undefined, callback: ConnectCallback): void
}

/** The writable server of a pool over several hosts, as its connections found it. */
export interface PrimaryHost {
  /** the host the last writable connection was established to (`undefined` before the first) */
  readonly current: () => ServerAddress | undefined
  /** the host of the last connection established, writable or not (`undefined` before the first) */
  readonly lastConnected: () => ServerAddress | undefined
  /** calls `listener` each time a connection finds the writable server at another host; returns the unsubscribe */
  readonly onMove: (listener: (from: ServerAddress, to: ServerAddress) => void) => () => void
}

/** pg-pool's connect callback, after an error, hands out a release that does nothing. */
const noRelease = () => {}

/**
 * A `pg.Pool` whose `connect` retries once, after invalidating the cached secret, when a new
 * connection is refused with 28P01 (see `connectRetryingStalePassword`). `pool.query` and
 * `@effect/sql-pg` both acquire through `connect`, so every path is covered.
 */
const makePoolClass = (
  hooks: Omit<StalePasswordHooks, "canRetry">,
  target: ConnectTarget,
  /** the class of the fresh clients: `pg.Client` under the pool's authentication policy */
  FreshClient: typeof Pg.Client,
  primaryHost: PrimaryHost | undefined
) =>
  class extends Pg.Pool implements SecurePool {
    readonly primaryHost = primaryHost

    // made once per pool, not per checkout
    readonly #poolHooks: StalePasswordHooks = { ...hooks, canRetry: () => !this.ending }

    readonly #clients = new WeakSet<Pg.ClientBase>()

    constructor(config?: Pg.PoolConfig) {
      super(config)
      this.on("connect", (client) => this.#clients.add(client))
    }

    owns(client: Pg.ClientBase): boolean {
      return this.#clients.has(client)
    }

    override connect(): Promise<Pg.PoolClient>
    override connect(callback: ConnectCallback): void
    override connect(callback?: ConnectCallback): Promise<Pg.PoolClient> | void {
      if (callback === undefined) {
        return new Promise<Pg.PoolClient>((resolve, reject) => {
          this.connect((err, client) => {
            if (err !== undefined) reject(err)
            else if (client !== undefined) resolve(client)
            else reject(classifyRuntimeError("pg returned no client", target))
          })
        })
      }
      // the fast path: a connection that is free (or opens at the first try) goes straight to the
      // caller; the stale-password retry is entered only once that first attempt has failed
      super.connect((err, client, release) => {
        if ((err === undefined || err === null) && client !== undefined) return callback(undefined, client, release)
        this.#retryAfter(err ?? classifyRuntimeError("pg returned no client", target), callback)
      })
    }

    checkout(callback: ConnectCallback): void {
      super.connect(callback)
    }

    recover(first: Error | null | undefined, callback: ConnectCallback): void {
      this.#retryAfter(first ?? classifyRuntimeError("pg returned no client", target), callback)
    }

    /** `connectRetryingStalePassword` with `first` as the outcome of its first attempt. */
    #retryAfter(first: Error, callback: ConnectCallback): void {
      let pending: Error | undefined = first
      connectRetryingStalePassword<{ readonly client: Pg.PoolClient; readonly release: (err?: Error | boolean) => void }>(
        (done) => {
          if (pending !== undefined) {
            const err = pending
            pending = undefined
            return done(err, undefined)
          }
          super.connect((err, client, release) => {
            if (err !== undefined && err !== null) done(err, undefined)
            else if (client !== undefined) done(undefined, { client, release })
            else done(classifyRuntimeError("pg returned no client", target), undefined)
          })
        },
        this.#poolHooks,
        (err, value) => {
          if (value !== undefined) callback(undefined, value.client, value.release)
          else callback(err ?? classifyRuntimeError("pg returned no client", target), undefined, noRelease)
        }
      )
    }

    readonly openClient = (done: Completion<Pg.Client>): (() => void) => {
      let abandoned = false
      let current: Pg.Client | undefined = undefined
      const close = (client: Pg.Client) => {
        // a client we discard: a failure to close it cleanly changes nothing
        client.end().then(undefined, () => undefined)
      }
      connectRetryingStalePassword<Pg.Client>(
        (attemptDone) => {
          // `this.options` itself, not a copy: pg-pool hides the password function as non-enumerable
          const client = new FreshClient(this.options)
          current = client
          // the outcome arrives through the promise below; a late socket error must not crash the process
          client.on("error", () => {})
          client.connect().then(
            () => attemptDone(undefined, client),
            (err: unknown) => {
              close(client)
              attemptDone(err instanceof Error ? err : classifyRuntimeError(err, target), undefined)
            }
          )
        },
        // a probe's connections are not the pool's: they count in neither its connection-error
        // metrics nor the failed-authentication alert (a probe repeating on the backoff would
        // otherwise turn one wrong password into an alert of its own making)
        { ...hooks, onConnectError: () => {}, onGaveUp: () => {}, canRetry: () => !abandoned && !this.ending },
        (err, client) => {
          if (abandoned) {
            if (client !== undefined) close(client)
            return
          }
          done(err, client)
        }
      )
      return () => {
        abandoned = true
        if (current !== undefined) close(current)
      }
    }
  }

const addressOf = (route: HostRoute): ServerAddress => ({ host: route.host, port: route.port })

const optionalAddress = (route: HostRoute | undefined): ServerAddress | undefined =>
  route === undefined ? undefined : addressOf(route)

/**
 * The chooser of a pool over several hosts (`undefined` for a pool to one server): scan probes of
 * class `ProbeClient` with the pool's options; a move of the writable server is logged and raised
 * as `PrimaryChanged`.
 */
const makeHostChooser = (
  options: PoolOptions,
  hooks: {
    readonly runFork: (effect: Effect.Effect<void>) => unknown
    readonly random: () => number
    readonly ProbeClient: typeof Pg.Client
    readonly publish: (alert: PrimaryChanged) => Effect.Effect<void>
    readonly onMove: (from: ServerAddress, to: ServerAddress) => void
  }
): HostChooser | undefined => {
  if (options.routes === undefined) return undefined
  const { ProbeClient, publish, runFork } = hooks
  const config = poolConfig(options)
  return makeChooser({
    attrs: options.settings.targetSessionAttrs,
    loadBalance: options.settings.loadBalanceHosts,
    routes: options.routes,
    probe: (route) => probeSession(ProbeClient, config, route),
    random: hooks.random,
    onPrimaryChanged: (from, to) => {
      hooks.onMove(addressOf(from), addressOf(to))
      runFork(publish(new PrimaryChanged({ host: to.host, port: to.port, previousHost: from.host, previousPort: from.port })))
    }
  })
}

const primaryHostOf = (
  chooser: HostChooser,
  moves: Set<(from: ServerAddress, to: ServerAddress) => void>
): PrimaryHost => ({
  current: () => optionalAddress(chooser.currentWritable()),
  lastConnected: () => optionalAddress(chooser.lastConnected()),
  onMove: (listener) => {
    moves.add(listener)
    return () => moves.delete(listener)
  }
})

/**
 * Builds the pool, scoped: closing the scope ends it (waiting at most 5 s for checked-out
 * connections). No connection is opened here; the first `connect` does that.
 */
export const makePool = (options: PoolOptions): Effect.Effect<SecurePool, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const target = targetOf(options)
    const annotations = { host: target.host, port: target.port, database: target.database }
    // metrics and alerts, when the pool is built by SecureSqlClient.layer
    const monitor = yield* Effect.serviceOption(Monitor)
    const instruments = Option.map(monitor, (m) => m.forPool(target))
    // DB_REQUIRE_AUTH and DB_CHANNEL_BINDING on every client of this pool: its connections and the
    // probes' fresh clients. An allowed md5 or cleartext request is logged once per pool, not per
    // connection (a pool of 20 would otherwise repeat it 20 times at every reconnect).
    let warnedWeakMethod = false
    const withAuthPolicy = AuthPolicy.make(options.settings, target, {
      onWeakMethod: (method) => {
        if (warnedWeakMethod) return
        warnedWeakMethod = true
        runFork(
          Effect.logWarning(AuthPolicy.weakMethodWarning(options.settings, target, method)).pipe(
            Effect.annotateLogs({ ...annotations, method })
          )
        )
      }
    })
    // the pool's clients: their statements timed by the monitor and typed (StatementTimeout for a
    // statement a bound ended, a connection that stopped answering discarded; ConnectionLost for a
    // loss without a SQLSTATE: statement/connection.ts), over the authentication policy and the
    // monitor's instruments
    // Vault dynamic credentials: every new client takes the newest user and password together
    const generations: DynamicCredentials.Generations = new WeakMap()
    const dynamic = options.credentials.dynamic
    const withCredentials = (Client: typeof Pg.Client) =>
      dynamic === undefined ? Client : DynamicCredentials.withDynamicCredentials(Client, dynamic, generations)
    const PoolClient = withSocketClosedOnFailure(withCredentials(withStatements(
      withTypedLosses(withAuthPolicy(Option.match(instruments, { onNone: () => Pg.Client, onSome: (i) => i.Client })), target),
      target,
      options.settings,
      Option.getOrUndefined(Option.map(instruments, (i) => i.statements))
    )))
    const random = () => Runtime.runSync(runtime)(Random.next)
    const moves = new Set<(from: ServerAddress, to: ServerAddress) => void>()
    const chooser = makeHostChooser(options, {
      runFork,
      random,
      onMove: (from, to) => {
        for (const listener of moves) listener(from, to)
      },
      ProbeClient: withAuthPolicy(Pg.Client),
      // without the layer's monitor (a bare makePool) the move is still logged
      publish: Option.match(monitor, {
        onNone: () => (alert: PrimaryChanged) => Effect.logWarning(alert.message),
        onSome: (m) => m.alerts.publish
      })
    })
    const chosen = (Base: typeof Pg.Client) => chooser === undefined ? Base : withHostChoice(Base, chooser)
    const SecurePool = makePoolClass({
      credentials: options.credentials,
      onStalePassword: () => {
        runFork(
          Effect.logInfo("PostgreSQL refused the cached password (28P01); re-reading the secret and retrying once")
            .pipe(Effect.annotateLogs(annotations))
        )
      },
      onConnectError: Option.match(instruments, { onNone: () => () => {}, onSome: (i) => i.connectFailed }),
      onGaveUp: Option.match(instruments, { onNone: () => () => {}, onSome: (i) => i.connectGaveUp })
    }, target, chosen(withSocketClosedOnFailure(withCredentials(withAuthPolicy(Pg.Client)))), chooser === undefined ? undefined : primaryHostOf(chooser, moves))

    // pg-pool's end() resolves once its client list is empty, before the clients' sockets have
    // closed; the finalizer also waits for every `remove` (emitted when a socket has closed), so
    // that when the scope is closed no connection of ours is left on the server.
    let open = 0
    const closed = new Set<() => void>()
    const allClosed = () =>
      new Promise<void>((resolve) => {
        if (open === 0) return resolve()
        closed.add(resolve)
      })

    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => {
        // with a monitor, DB_QUERY_TIMEOUT is its sweep's (internal/monitor.ts), not a timer per statement
        const { query_timeout, ...config } = poolConfig(options)
        const readTimer = Option.isSome(instruments) ? {} : { query_timeout }
        const pool = new SecurePool({ ...config, ...readTimer, Client: chosen(PoolClient) })
        // DB_MAX_LIFETIME, jittered per connection (internal/connectionLifetime.ts)
        applyMaxLifetime(pool, options.settings, random)
        pool.on("connect", () => {
          open++
        })
        pool.on("remove", () => {
          open--
          if (open === 0) for (const resolve of closed) resolve()
        })
        return pool
      }),
      (pool) =>
        Effect.promise(() => pool.end().then(allClosed)).pipe(
          Effect.interruptible,
          Effect.timeoutOption("5 seconds"),
          Effect.flatMap((ended) =>
            ended._tag === "None"
              ? Effect.logWarning("PostgreSQL pool did not end within 5 s: connections are still checked out")
              : Effect.void
          ),
          Effect.annotateLogs(annotations)
        )
    )

    const logLost = (what: string) => (err: Error) => {
      const lost = classifyRuntimeError(err, target)
      if (Option.isSome(instruments)) instruments.value.connectionLost(lost)
      runFork(
        Effect.logWarning(`${what}: ${lost.message}`).pipe(
          Effect.annotateLogs({ ...annotations, error: lost._tag, ...(lost.code === undefined ? {} : { code: lost.code }) })
        )
      )
    }

    // An idle client dying (server restart, terminated backend, network reset): pg-pool has
    // already removed it and will open a new one on demand. Without this listener Node would
    // throw the error and end the process.
    // A connection is reported lost once: pg follows the server's error with "Connection
    // terminated unexpectedly" when the socket closes, which is the same loss.
    const reported = new WeakSet<Pg.PoolClient>()
    const onIdleError = logLost("Idle PostgreSQL connection lost; the pool replaces it on demand")
    pool.on("error", (err, client) => {
      // a client released with its error is back on pg-pool's idle listener when pg reports the
      // socket closing: that is the loss already reported while it was in use
      if (reported.has(client)) return
      reported.add(client)
      onIdleError(err)
    })

    // A checked-out client has no pool listener while it is out (pg-pool detaches its idle
    // listener on checkout). Rather than adding and removing a listener on every checkout, each
    // client gets one for its whole life when it connects. An idle client's error also reaches
    // pg-pool's idle listener, which emits it on the pool within the same `emit`: the check waits
    // a microtask so that such a loss is reported once, as the pool's.
    const onCheckedOutError = logLost("PostgreSQL connection in use failed")
    pool.on("connect", (client) => {
      client.on("error", (err) => {
        queueMicrotask(() => {
          if (reported.has(client)) return
          reported.add(client)
          onCheckedOutError(err)
        })
      })
    })

    if (Option.isSome(instruments)) yield* instruments.value.watch(pool)
    if (dynamic !== undefined) yield* DynamicCredentials.retireOnRollover(pool, dynamic, generations)

    return pool
  })

/** `pg.Pool`'s `connect` in its callback form: what `acquireClient` checks a connection out with. */
export type PoolConnect = (
  callback: (err: Error | undefined, client: Pg.PoolClient | undefined, release: (err?: Error) => void) => void
) => void

/** Why a connection is handed back broken: pg-pool destroys a client released with an error. */
const discarded = (target: ConnectTarget) =>
  new Error(`the check of a connection to ${target.host}:${target.port} failed or timed out; the connection is discarded`)

/**
 * Checks one connection out of a pool with its `connect` (bound to the pool), scoped: closing the scope releases it — with an error
 * when the scope closes with a failure or an interruption (a timed-out check), so that pg-pool
 * destroys the connection instead of handing a hung or half-used one to the next caller. The wait
 * is bounded by the pool's connect timeout; a connection that arrives after the waiter was
 * interrupted is released straight away, so nothing leaks.
 */
export const acquireClient = (
  connect: PoolConnect,
  target: ConnectTarget
): Effect.Effect<Pg.PoolClient, AcquireError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ readonly client: Pg.PoolClient; readonly release: (err?: Error) => void }, AcquireError>(
      (resume) => {
        let abandoned = false
        connect((err, client, release) => {
          if (abandoned) {
            if (client !== undefined) release()
            return
          }
          if (err !== undefined && err !== null) resume(Effect.fail(classifyConnectError(err, target)))
          else if (client !== undefined) resume(Effect.succeed({ client, release }))
          else resume(Effect.fail(classifyRuntimeError("pg returned no client", target)))
        })
        return Effect.sync(() => {
          abandoned = true
        })
      }
    ),
    ({ release }, exit) => Effect.sync(() => (Exit.isSuccess(exit) ? release() : release(discarded(target))))
  ).pipe(Effect.map(({ client }) => client))

/**
 * Opens a fresh client outside the pool's slots (see `SecurePool.openClient`), scoped: closing
 * the scope closes the client. Bounded by pg's connect timeout per attempt.
 */
export const openFreshClient = (
  pool: SecurePool,
  target: ConnectTarget
): Effect.Effect<Pg.Client, AcquireError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Pg.Client, AcquireError>((resume) => {
      const abandon = pool.openClient((err, client) => {
        if (client !== undefined) resume(Effect.succeed(client))
        else resume(Effect.fail(classifyConnectError(err, target)))
      })
      return Effect.sync(abandon)
    }),
    (client) =>
      Effect.sync(() => {
        // discarded either way; a failure to close it cleanly changes nothing
        client.end().then(undefined, () => undefined)
      })
  )
