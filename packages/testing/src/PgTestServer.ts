/**
 * A throwaway PostgreSQL server for tests: copied from an initdb template into a temp folder,
 * started on a free loopback port as the `postgres` user, configurable live (TLS, certificates,
 * pg_hba rules, TLS versions, ciphers) and gone when its scope closes. The server dies with the
 * process that started it, even when that process is SIGKILLed.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Pg from "pg"
import { findBinDir } from "./internal/pg/binaries.js"
import { freePort } from "./internal/pg/freePort.js"
import { type HbaRuleLike, renderConf, renderHba } from "./internal/pg/config.js"
import * as Process from "./internal/pg/process.js"
import * as Socket from "./internal/pg/socket.js"
import * as Sweep from "./internal/pg/sweep.js"
import * as Template from "./internal/pg/template.js"
import { describeCause, failure, PgTestServerError } from "./internal/pg/testServerError.js"
import * as LeakGuard from "./LeakGuard.js"
import type { CertificateFiles } from "./TestPki.js"

export {
  /**
   * @since 0.1.0
   * @category errors
   */
  PgTestServerError
}

/**
 * A TLS protocol version as PostgreSQL names it.
 *
 * @since 0.1.0
 * @category models
 */
export type TlsVersion = "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3"

/**
 * Server configuration. Everything except `maxConnections` can change live with `reload`.
 * A field set to `undefined` means PostgreSQL's / the harness's default, so
 * `reload({ hba: undefined })` restores the default rules.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerSettings {
  /** TLS on or off; defaults to on when a certificate is given. */
  readonly ssl?: boolean | undefined
  /** Server certificate and key, copied into the data folder (key owned by postgres, 0600). */
  readonly certificate?: CertificateFiles | undefined
  /** PEM of the CA that signs client certificates (`ssl_ca_file`), for mutual TLS. */
  readonly ca?: string | undefined
  /**
   * Replaces the TCP lines of pg_hba.conf. The unix-socket lines for the superuser are always
   * kept. Default: {@link defaultHba}.
   */
  readonly hba?: ReadonlyArray<HbaRule> | undefined
  /** `ssl_min_protocol_version`; PostgreSQL's default is TLSv1.2. */
  readonly minTlsVersion?: TlsVersion | undefined
  /** `ssl_max_protocol_version`; none by default. */
  readonly maxTlsVersion?: TlsVersion | undefined
  /** `ssl_ciphers`; a TLS 1.1-only server on OpenSSL 3 needs `DEFAULT:@SECLEVEL=0`. */
  readonly ciphers?: string | undefined
  /** `max_connections`: restart-only, so it applies on start and restart (a reload only records it). */
  readonly maxConnections?: number | undefined
  /** Anything else for postgresql.conf, e.g. `{ log_connections: "on" }`. */
  readonly extraConf?: Readonly<Record<string, string>> | undefined
}

interface HbaRuleFields {
  /** Database column; `all` by default. */
  readonly database?: string
  /** User column; `all` by default. */
  readonly user?: string
  /** Address column; `127.0.0.1/32` by default (the server listens on 127.0.0.1 only). */
  readonly address?: string
}

/**
 * One TCP line of pg_hba.conf.
 *
 * PostgreSQL 15 accepts `cert` only with `clientcert=verify-full` (implied when omitted), and
 * `scram-sha-256` with `clientcert=verify-ca` checks the chain but not the CN.
 *
 * @since 0.1.0
 * @category models
 */
export type HbaRule =
  | HbaRuleFields & {
    readonly type: "hostssl"
    /** `md5` and `password` let a test see a client offered the legacy methods (see `createRole`: SCRAM-stored passwords make `md5` use SCRAM) */
    readonly method: "scram-sha-256" | "md5" | "password" | "cert" | "trust" | "reject"
    readonly clientCert?: "verify-ca" | "verify-full"
  }
  | HbaRuleFields & { readonly type: "hostnossl"; readonly method: "reject" | "scram-sha-256" | "trust" }
  | HbaRuleFields & { readonly type: "host"; readonly method: "scram-sha-256" | "trust" | "reject" }

/**
 * A running test server.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgTestServer {
  readonly host: "127.0.0.1"
  readonly port: number
  readonly dataDir: string
  readonly socketDir: string
  readonly binDir: string
  /** postgres.log in the data folder: the server's stderr, including FATALs at start. */
  readonly logFile: string
  /** The superuser, reachable over the unix socket in `socketDir` without a password. */
  readonly superuser: { readonly user: "postgres"; readonly database: "postgres" }
  /** The postmaster's process id while it runs. */
  readonly pid: Effect.Effect<Option.Option<number>>
  /** The settings in force (as last given to make / reload). */
  readonly settings: Effect.Effect<ServerSettings>
  /** Runs SQL as the superuser over the unix socket, on a fresh connection. */
  readonly query: (
    sql: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, PgTestServerError>
  /** CREATE ROLE; `login` defaults to true, the password is stored as SCRAM-SHA-256. */
  readonly createRole: (options: {
    readonly name: string
    readonly password?: string | Redacted.Redacted<string>
    readonly superuser?: boolean
    readonly login?: boolean
  }) => Effect.Effect<void, PgTestServerError>
  readonly createDatabase: (name: string, owner?: string) => Effect.Effect<void, PgTestServerError>
  /**
   * Merges `settings` into the current ones, rewrites postgresql.conf, pg_hba.conf and the
   * certificate files, runs `pg_reload_conf()` and returns once new connections see the result.
   * Fails (leaving the old configuration running) when PostgreSQL reports an invalid setting or
   * pg_hba line.
   */
  readonly reload: (settings: Partial<ServerSettings>) => Effect.Effect<void, PgTestServerError>
  /** Fast shutdown and start again on the same port, optionally staying down for `downFor`. */
  readonly restart: (options?: { readonly downFor?: Duration.DurationInput }) => Effect.Effect<void, PgTestServerError>
  /** Fast shutdown, keeping the data folder and port: the server can `resume`. */
  readonly pause: Effect.Effect<void, PgTestServerError>
  /** Starts a paused server again on the same port and waits until it accepts connections. */
  readonly resume: Effect.Effect<void, PgTestServerError>
  /**
   * Stops the postmaster with SIGSTOP: the kernel still completes TCP handshakes on the listen
   * backlog, but no new session gets an answer (a hung server). Open sessions keep working.
   * `thaw` (or stop / scope close) continues it.
   */
  readonly freeze: Effect.Effect<void, PgTestServerError>
  /** Continues a frozen postmaster (SIGCONT). */
  readonly thaw: Effect.Effect<void, PgTestServerError>
  /**
   * Promotes a standby (see `makeStandby`) with `pg_ctl promote` and returns once it has left
   * recovery and accepts writes; it stays a primary across `restart`. Fails on a server that is
   * not in recovery.
   */
  readonly promote: Effect.Effect<void, PgTestServerError>
  /** Alias of `resume`. */
  readonly start: Effect.Effect<void, PgTestServerError>
  /** Shuts the server down for good and deletes its temp folder (also done when the scope closes). */
  readonly stop: Effect.Effect<void, PgTestServerError>
}

/**
 * The TCP rules used when none are given: SCRAM for everyone, over TLS when TLS is on.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultHba = (ssl: boolean): ReadonlyArray<HbaRule> => [
  ssl ? { type: "hostssl", method: "scram-sha-256" } : { type: "host", method: "scram-sha-256" }
]

/**
 * The variable in which the vitest global setup announces the initdb template folder to workers.
 *
 * @since 0.1.0
 * @category constants
 */
export const TEMPLATE_ENV: string = Template.TEMPLATE_ENV

/**
 * Runs initdb once into a temp folder (removed when the scope closes) and returns the data
 * folder to announce in {@link TEMPLATE_ENV}. For the test runner's global setup.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTemplate: Effect.Effect<string, PgTestServerError, Scope.Scope> = Effect.map(
  Effect.acquireRelease(Template.createTemplate, Template.removeTemplate),
  (template) => template.dataDir
)

/**
 * Deletes the temp folders of servers and templates whose owning process died without cleaning
 * up (a SIGKILLed test worker). A postmaster still running in such a folder (spawned without
 * `setpriv`'s parent-death signal, e.g. on macOS) is stopped first with SIGQUIT, PostgreSQL's
 * immediate shutdown. Returns how many folders were removed. The vitest global setup runs it
 * once per run.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sweepStale: Effect.Effect<number> = Sweep.sweepStale

// Servers are real processes: every wait below is on the wall clock, so the harness also works
// inside `it.effect` / `it.scoped`, whose TestClock would otherwise freeze it.
const liveClock = Clock.make()
const live = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => Effect.withClock(effect, liveClock)

const attempt = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, PgTestServerError> =>
  Effect.tryPromise({ try: run, catch: (cause) => failure(operation, describeCause(cause)) })

interface Layout {
  readonly base: string
  readonly dataDir: string
  readonly socketDir: string
  readonly logFile: string
  readonly opensslConf: string
  readonly binDir: string
  readonly user: Process.ServerUser
  readonly standby: boolean
}

const resolveSsl = (settings: ServerSettings): boolean => settings.ssl ?? settings.certificate !== undefined

const confEntries = (layout: Layout, port: number, settings: ServerSettings): Array<readonly [string, string]> => {
  const ssl = resolveSsl(settings)
  const entries: Array<readonly [string, string]> = [
    ["port", String(port)],
    ["listen_addresses", "127.0.0.1"],
    ["unix_socket_directories", layout.socketDir],
    ["ssl", ssl ? "on" : "off"],
    ["ssl_ca_file", settings.ca === undefined ? "" : "ca.crt"],
    ["ssl_min_protocol_version", settings.minTlsVersion ?? "TLSv1.2"],
    ["ssl_max_protocol_version", settings.maxTlsVersion ?? ""],
    ["ssl_ciphers", settings.ciphers ?? "HIGH:MEDIUM:+3DES:!aNULL"]
  ]
  if (settings.certificate !== undefined) {
    entries.push(["ssl_cert_file", "server.crt"], ["ssl_key_file", "server.key"])
  }
  if (settings.maxConnections !== undefined) {
    entries.push(["max_connections", String(settings.maxConnections)])
  }
  if (layout.standby) {
    // Re-stream quickly after the primary comes back (the default waits 5 s between attempts).
    entries.push(["hot_standby", "on"], ["wal_retrieve_retry_interval", "200ms"])
  }
  for (const [key, value] of Object.entries(settings.extraConf ?? {})) {
    entries.push([key, value])
  }
  return entries
}

const writePrivate = (layout: Layout, name: string, content: string, mode: number) =>
  Effect.gen(function*() {
    const file = Path.join(layout.dataDir, name)
    yield* attempt("writeConfig", async () => {
      await FsP.rm(file, { force: true })
      await FsP.writeFile(file, content, { mode })
      await FsP.chmod(file, mode)
    })
    yield* Process.chownToServer(layout.user, file)
  })

const writeConfiguration = (layout: Layout, port: number, settings: ServerSettings) =>
  Effect.gen(function*() {
    const ssl = resolveSsl(settings)
    if (ssl && settings.certificate === undefined) {
      return yield* Effect.fail(
        failure("writeConfig", "ssl is on but no certificate was given; pass `certificate: pki.server` (TestPki)")
      )
    }
    if (settings.certificate !== undefined) {
      yield* writePrivate(layout, "server.crt", settings.certificate.certPem, 0o644)
      // PostgreSQL refuses a key readable by group or others when it owns it.
      yield* writePrivate(layout, "server.key", settings.certificate.keyPem, 0o600)
    }
    if (settings.ca !== undefined) {
      yield* writePrivate(layout, "ca.crt", settings.ca, 0o644)
    }
    yield* writePrivate(layout, "takumi.conf", renderConf(confEntries(layout, port, settings)), 0o644)
    const rules: ReadonlyArray<HbaRuleLike> = settings.hba ?? defaultHba(ssl)
    yield* writePrivate(layout, "pg_hba.conf", renderHba(rules), 0o600)
  })

const logSize = (logFile: string): Effect.Effect<number> =>
  Effect.promise(() => FsP.stat(logFile).then((stat) => stat.size, () => 0))

const logSince = (logFile: string, offset: number): Effect.Effect<string> =>
  Effect.promise(() =>
    FsP.readFile(logFile).then(
      (buffer) => buffer.subarray(offset).toString("utf8").trimEnd().split("\n").slice(-25).join("\n"),
      () => ""
    )
  )

const READY_TIMEOUT = Duration.seconds(30)

const awaitExit = (postmaster: Process.Postmaster) => Deferred.await(postmaster.exited)

const shutdown = (postmaster: Process.Postmaster): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (yield* Deferred.isDone(postmaster.exited)) return
    // SIGINT is PostgreSQL's "fast" shutdown: open sessions are terminated (57P01), no waiting.
    postmaster.signal("SIGINT")
    // A frozen server (see `freeze`) handles the signal only once it runs again.
    postmaster.signal("SIGCONT")
    const exited = yield* awaitExit(postmaster).pipe(Effect.timeout("15 seconds"), Effect.option)
    if (Option.isNone(exited)) {
      // SIGQUIT is the immediate shutdown (it also stops the backends); SIGKILL only as a last resort.
      postmaster.signal("SIGQUIT")
      const quit = yield* awaitExit(postmaster).pipe(Effect.timeout("5 seconds"), Effect.option)
      if (Option.isNone(quit)) {
        postmaster.signal("SIGKILL")
        yield* awaitExit(postmaster)
      }
    }
  })

/** Spawns the postmaster and waits until the superuser can connect over the socket. */
const launch = (layout: Layout, port: number): Effect.Effect<Process.Postmaster, PgTestServerError> =>
  Effect.gen(function*() {
    const offset = yield* logSize(layout.logFile)
    const postmaster = yield* Process.spawnPostmaster({
      user: layout.user,
      binDir: layout.binDir,
      dataDir: layout.dataDir,
      logFile: layout.logFile,
      opensslConf: layout.opensslConf
    })
    const address = { socketDir: layout.socketDir, port }
    const ready = Socket.query(address, "select 1", [], "start").pipe(
      Effect.retry(Schedule.spaced("20 millis")),
      Effect.timeoutFail({
        duration: READY_TIMEOUT,
        onTimeout: () => failure("start", `server not ready after ${Duration.format(READY_TIMEOUT)}`)
      })
    )
    const died = Effect.flatMap(awaitExit(postmaster), (outcome) =>
      Effect.fail(failure("start", `postgres exited during start-up (${outcome})`)))
    return yield* Effect.raceFirst(ready, died).pipe(
      Effect.as(postmaster),
      Effect.catchAll((error) =>
        Effect.gen(function*() {
          yield* shutdown(postmaster)
          const log = yield* logSince(layout.logFile, offset)
          return yield* Effect.fail(
            new PgTestServerError({
              operation: error.operation,
              message: `${error.message}\nlog ${layout.logFile}:\n${log}`
            })
          )
        })
      )
    )
  })

const isBindFailure = (error: PgTestServerError): boolean =>
  /could not bind|could not create any TCP\/IP sockets|Address already in use/.test(error.message)

interface State {
  settings: ServerSettings
  postmaster: Process.Postmaster | undefined
  removed: boolean
}

const quoteIdent = (name: string): string => Pg.escapeIdentifier(name)

const build = (
  layout: Layout,
  initialSettings: ServerSettings
): Effect.Effect<PgTestServer, PgTestServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const state: State = { settings: initialSettings, postmaster: undefined, removed: false }
    const lock = yield* Effect.makeSemaphore(1)
    const serialized = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => live(lock.withPermits(1)(effect))

    const stopNow = Effect.gen(function*() {
      if (state.removed) return
      if (state.postmaster !== undefined) yield* shutdown(state.postmaster)
      state.postmaster = undefined
      state.removed = true
      yield* attempt("stop", () => FsP.rm(layout.base, { recursive: true, force: true }))
    })
    yield* Effect.addFinalizer(() =>
      live(lock.withPermits(1)(stopNow)).pipe(
        Effect.catchAll((error) => Effect.logWarning(`PgTestServer cleanup: ${error.message}`))
      )
    )

    // Pick a free port, retrying when another process grabs it between probe and bind.
    // Five attempts in all, each on a newly probed port; any other failure ends at once.
    const firstStart = Effect.gen(function*() {
      const port = yield* freePort
      yield* writeConfiguration(layout, port, state.settings)
      const postmaster = yield* launch(layout, port)
      return { port, postmaster }
    }).pipe(Effect.retry({ schedule: Schedule.recurs(4), while: isBindFailure }))
    // A server that never came up leaves nothing behind, even in a long-lived scope.
    const first = yield* firstStart.pipe(Effect.tapError(() => Effect.ignore(stopNow)))
    state.postmaster = first.postmaster
    const finalPort = first.port
    const address = { socketDir: layout.socketDir, port: finalPort }

    const ensureUsable = (operation: string) =>
      state.removed
        ? Effect.fail(failure(operation, "the server was stopped; make a new one"))
        : Effect.void

    // Same port again: while the server was down an outgoing connection may have borrowed it as
    // its ephemeral local port; that clears within moments, so retry bind failures briefly.
    const relaunch = launch(layout, finalPort).pipe(
      Effect.retry({
        schedule: Schedule.spaced("200 millis").pipe(Schedule.upTo("10 seconds")),
        while: isBindFailure
      })
    )

    const resume = serialized(Effect.gen(function*() {
      yield* ensureUsable("resume")
      if (state.postmaster !== undefined && !(yield* Deferred.isDone(state.postmaster.exited))) return
      yield* writeConfiguration(layout, finalPort, state.settings)
      state.postmaster = yield* relaunch
    }))

    const pause = serialized(Effect.gen(function*() {
      yield* ensureUsable("pause")
      if (state.postmaster !== undefined) yield* shutdown(state.postmaster)
      state.postmaster = undefined
    }))

    const loadTime = Effect.map(
      Socket.query(address, "select pg_conf_load_time()::text as t", [], "reload"),
      (rows) => String(rows[0]?.["t"])
    )

    const reportInvalid = Effect.gen(function*() {
      const settingErrors = yield* Socket.query(
        address,
        // PostgreSQL says "setting could not be applied" both for an invalid value and for a
        // changed restart-only setting (max_connections); only the latter is fine here.
        "select f.name, f.sourcefile, f.sourceline, f.error from pg_file_settings f " +
          "left join pg_settings s on s.name = f.name where f.error is not null " +
          "and not (f.error = 'setting could not be applied' and s.context = 'postmaster')",
        [],
        "reload"
      )
      const hbaErrors = yield* Socket.query(
        address,
        // PostgreSQL merely warns about hostssl lines while ssl is off (and judges by the ssl
        // setting still running, which this very reload may change).
        "select line_number, error from pg_hba_file_rules where error is not null " +
          "and error <> 'hostssl record cannot match because SSL is disabled'",
        [],
        "reload"
      )
      const problems = [
        ...settingErrors.map((row) =>
          `postgresql setting ${String(row["name"])} (${String(row["sourcefile"])}:${String(row["sourceline"])}): ${
            String(row["error"])
          }`
        ),
        ...hbaErrors.map((row) => `pg_hba.conf line ${String(row["line_number"])}: ${String(row["error"])}`)
      ]
      if (problems.length > 0) {
        return yield* Effect.fail(failure("reload", `PostgreSQL rejected the configuration:\n${problems.join("\n")}`))
      }
    })

    const signalReload = Effect.gen(function*() {
      const before = yield* loadTime
      yield* Socket.query(address, "select pg_reload_conf()", [], "reload")
      // The postmaster re-reads the files (and rebuilds its TLS context) on SIGHUP; backends
      // forked afterwards report the new load time, so a changed value means "applied".
      yield* loadTime.pipe(
        Effect.filterOrFail(
          (after) => after !== before,
          () => failure("reload", "configuration not reloaded yet")
        ),
        Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("10 seconds")))
      )
    })

    const reload = (partial: Partial<ServerSettings>) =>
      serialized(Effect.gen(function*() {
        yield* ensureUsable("reload")
        const previous = state.settings
        const next: ServerSettings = { ...previous, ...partial }
        const running = state.postmaster !== undefined
        yield* writeConfiguration(layout, finalPort, next)
        state.settings = next
        if (!running) return
        const invalid = yield* Effect.either(reportInvalid)
        if (invalid._tag === "Left") {
          // Put the files back so a later restart does not trip over them.
          state.settings = previous
          yield* writeConfiguration(layout, finalPort, previous)
          return yield* Effect.fail(invalid.left)
        }
        const offset = yield* logSize(layout.logFile)
        yield* signalReload
        // PostgreSQL keeps the previous TLS context when the new certificate, key or CA cannot be
        // loaded, and only says so in its log: turn that into a failure instead of a silent lie.
        const log = yield* logSince(layout.logFile, offset)
        if (log.includes("SSL configuration was not reloaded")) {
          state.settings = previous
          yield* writeConfiguration(layout, finalPort, previous)
          yield* signalReload
          return yield* Effect.fail(failure(
            "reload",
            `PostgreSQL could not load the new TLS files and kept the previous ones (a 1024-bit key, a key that ` +
              `does not match the certificate, an unreadable file?):\n${log}`
          ))
        }
      }))

    const restart = (options?: { readonly downFor?: Duration.DurationInput }) =>
      serialized(Effect.gen(function*() {
        yield* ensureUsable("restart")
        if (state.postmaster !== undefined) yield* shutdown(state.postmaster)
        state.postmaster = undefined
        if (options?.downFor !== undefined) yield* Effect.sleep(options.downFor)
        yield* writeConfiguration(layout, finalPort, state.settings)
        state.postmaster = yield* relaunch
      }))

    const signalRunning = (operation: string, signal: NodeJS.Signals) =>
      serialized(Effect.gen(function*() {
        yield* ensureUsable(operation)
        const postmaster = state.postmaster
        if (postmaster === undefined) {
          return yield* Effect.fail(failure(operation, "the server is not running (paused?)"))
        }
        postmaster.signal(signal)
      }))

    const query = (sql: string, params?: ReadonlyArray<unknown>) =>
      live(Effect.zipRight(ensureUsable("query"), Socket.query(address, sql, params ?? [])))

    const promote = serialized(Effect.gen(function*() {
      yield* ensureUsable("promote")
      // `-w`: pg_ctl waits until the server has left recovery (at most `-t` seconds)
      yield* Process.run("promote", layout.user, Path.join(layout.binDir, "pg_ctl"), [
        "promote",
        "-D",
        layout.dataDir,
        "-w",
        "-t",
        "60"
      ])
      yield* Socket.query(address, "select pg_is_in_recovery() as r", [], "promote").pipe(
        Effect.filterOrFail(
          (rows) => rows[0]?.["r"] === false,
          () => failure("promote", "the server is still in recovery after pg_ctl promote")
        )
      )
    }))

    const server: PgTestServer = {
      host: "127.0.0.1",
      port: finalPort,
      dataDir: layout.dataDir,
      socketDir: layout.socketDir,
      binDir: layout.binDir,
      logFile: layout.logFile,
      superuser: { user: "postgres", database: "postgres" },
      pid: Effect.sync(() => Option.fromNullable(state.postmaster?.pid)),
      settings: Effect.sync(() => state.settings),
      query,
      createRole: (options) => {
        if (options.password !== undefined) LeakGuard.registerUnsafe(options.password, `PgTestServer role ${options.name} password`)
        const password = options.password === undefined
          ? "PASSWORD NULL"
          : `PASSWORD ${Pg.escapeLiteral(Redacted.isRedacted(options.password) ? Redacted.value(options.password) : options.password)}`
        const flags = [
          options.login === false ? "NOLOGIN" : "LOGIN",
          options.superuser === true ? "SUPERUSER" : "NOSUPERUSER",
          password
        ].join(" ")
        return query(`CREATE ROLE ${quoteIdent(options.name)} WITH ${flags}`).pipe(
          // Query errors never carry the statement, so the password is not echoed back.
          Effect.mapError((error) => new PgTestServerError({ operation: "createRole", message: error.message })),
          Effect.asVoid
        )
      },
      createDatabase: (name, owner) =>
        query(`CREATE DATABASE ${quoteIdent(name)}${owner === undefined ? "" : ` OWNER ${quoteIdent(owner)}`}`).pipe(
          Effect.asVoid
        ),
      reload,
      restart,
      pause,
      resume,
      start: resume,
      freeze: signalRunning("freeze", "SIGSTOP"),
      thaw: signalRunning("thaw", "SIGCONT"),
      promote,
      stop: serialized(stopNow)
    }
    return server
  })

/**
 * The server's own OpenSSL configuration. Debian's system default (SECLEVEL=2, MinProtocol
 * TLSv1.2) makes PostgreSQL refuse to *load* a 1024-bit key ("ee key too small") before
 * `ssl_ciphers` can lower the level, so `TestPki.rsa1024` could never be served. Level 1 admits
 * it; the protocol floor stays with `ssl_min_protocol_version` (TLSv1.2 unless a test lowers it).
 */
const OPENSSL_CONF = `openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT:@SECLEVEL=1
`

const makeBase = (operation: string, user: Process.ServerUser) =>
  Effect.gen(function*() {
    const base = yield* attempt(operation, () => FsP.mkdtemp(Path.join(Os.tmpdir(), Sweep.PREFIX)))
    yield* attempt(operation, () => Sweep.writeOwner(base))
    const socketDir = Path.join(base, "socket")
    yield* attempt(operation, () => FsP.mkdir(socketDir, { mode: 0o700 }))
    // Every parent of the data folder must be traversable by postgres: /tmp is, /root is not.
    yield* Process.chownToServer(user, base)
    yield* Process.chownToServer(user, socketDir)
    const opensslConf = Path.join(base, "openssl.cnf")
    yield* attempt(operation, () => FsP.writeFile(opensslConf, OPENSSL_CONF, { mode: 0o644 }))
    return { base, socketDir, opensslConf, dataDir: Path.join(base, "data") }
  })

/**
 * Starts a server from the initdb template on a free port of 127.0.0.1. The server, its
 * processes and its temp folder are removed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (settings: ServerSettings = {}): Effect.Effect<PgTestServer, PgTestServerError, Scope.Scope> =>
  live(Effect.gen(function*() {
    const binDir = yield* findBinDir
    const user = yield* Process.serverUser
    const template = yield* Template.templateDataDir
    const { base, dataDir, opensslConf, socketDir } = yield* makeBase("make", user)
    const cleanup = Effect.promise(() => FsP.rm(base, { recursive: true, force: true }))
    yield* Process.run("copyTemplate", user, "/bin/cp", ["-a", template, dataDir]).pipe(Effect.tapError(() => cleanup))
    const layout: Layout = {
      base,
      dataDir,
      socketDir,
      logFile: Path.join(dataDir, "postgres.log"),
      opensslConf,
      binDir,
      user,
      standby: false
    }
    return yield* build(layout, settings)
  }))

/**
 * Starts a streaming hot standby of `primary` (pg_basebackup -R over the primary's unix
 * socket): read-only, following the primary's WAL. Settings default to the primary's (same
 * certificate, TLS and hba); returns once the standby streams from the primary.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeStandby = (
  primary: PgTestServer,
  settings?: ServerSettings
): Effect.Effect<PgTestServer, PgTestServerError, Scope.Scope> =>
  live(Effect.gen(function*() {
    const user = yield* Process.serverUser
    const standbySettings = settings ?? (yield* primary.settings)
    const { base, dataDir, opensslConf, socketDir } = yield* makeBase("makeStandby", user)
    const cleanup = Effect.promise(() => FsP.rm(base, { recursive: true, force: true }))
    yield* Process.run("makeStandby", user, Path.join(primary.binDir, "pg_basebackup"), [
      "-D",
      dataDir,
      "-h",
      primary.socketDir,
      "-p",
      String(primary.port),
      "-U",
      "postgres",
      "--write-recovery-conf",
      "--wal-method=stream",
      "--checkpoint=fast",
      "--no-sync"
    ]).pipe(Effect.tapError(() => cleanup))
    const logFile = Path.join(dataDir, "postgres.log")
    // The copy carries the primary's log; start the standby's own.
    yield* attempt("makeStandby", () => FsP.writeFile(logFile, ""))
    yield* Process.chownToServer(user, logFile)
    const layout: Layout = {
      base,
      dataDir,
      socketDir,
      logFile,
      opensslConf,
      binDir: primary.binDir,
      user,
      standby: true
    }
    const standby = yield* build(layout, standbySettings)
    yield* standby.query("select status from pg_stat_wal_receiver").pipe(
      Effect.filterOrFail(
        (rows) => rows[0]?.["status"] === "streaming",
        () => failure("makeStandby", "the standby is not streaming from the primary yet")
      ),
      Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("30 seconds"))),
      Effect.catchAll((error) =>
        Effect.flatMap(Process.logTail(logFile), (log) =>
          Effect.fail(failure("makeStandby", `${error.message}\nlog ${logFile}:\n${log}`)))
      )
    )
    return standby
  }))

/**
 * Promise flavour of {@link make} for plain vitest and scripts: `close()` stops the server and
 * deletes its folder.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = (
  settings?: ServerSettings
): Promise<PgTestServer & { readonly close: () => Promise<void> }> =>
  Effect.runPromise(Effect.gen(function*() {
    const scope = yield* Scope.make()
    const server = yield* make(settings).pipe(
      Scope.extend(scope),
      Effect.onError(() => Scope.close(scope, Exit.void))
    )
    return { ...server, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
  }))
