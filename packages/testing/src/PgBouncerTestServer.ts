/**
 * A real PgBouncer in front of a {@link PgTestServer}, for tests of what an application sees
 * through a connection pooler: TLS on both legs (clients → PgBouncer with the certificate you
 * give it, PgBouncer → PostgreSQL with `server_tls_sslmode = verify-full` by default), SCRAM
 * authentication from an `auth_file` holding the roles' SCRAM verifiers read from `pg_authid`,
 * and transaction pooling by default. It runs as the `postgres` user (as the server does), dies
 * with the process that started it, and is gone when its scope closes.
 *
 * Needs the `pgbouncer` binary (Debian/Ubuntu: `apt-get install pgbouncer`; 1.18 is what the
 * suite runs), found on `PATH`, in `/usr/sbin` or through `PGBOUNCER_BIN`.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { freePort } from "./internal/pg/freePort.js"
import * as Process from "./internal/pg/process.js"
import * as Sweep from "./internal/pg/sweep.js"
import { describeCause, failure, type PgTestServerError } from "./internal/pg/testServerError.js"
import { renderAuthFile, renderIni } from "./internal/pgbouncer/config.js"
import * as LeakGuard from "./LeakGuard.js"
import type { PgTestServer } from "./PgTestServer.js"
import type { CertificateFiles } from "./TestPki.js"

/**
 * PgBouncer's `server_tls_sslmode` (its leg to PostgreSQL).
 *
 * @since 0.1.0
 * @category models
 */
export type ServerTlsMode = "disable" | "require" | "verify-ca" | "verify-full"

/**
 * How the PgBouncer is set up.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgBouncerSettings {
  /** The PostgreSQL it pools for; reached at 127.0.0.1 and its port. */
  readonly server: PgTestServer
  /** What PgBouncer presents to clients (`client_tls_cert_file` / `client_tls_key_file`). */
  readonly certificate: CertificateFiles
  /** PEM of the CA that signed the PostgreSQL server's certificate (`server_tls_ca_file`). */
  readonly serverCa: string
  /** The roles PgBouncer lets in: their SCRAM verifiers go to the `auth_file`. */
  readonly users: ReadonlyArray<string>
  /** `pool_mode`; `transaction` by default. */
  readonly poolMode?: "session" | "transaction" | "statement" | undefined
  /** `server_tls_sslmode`; `verify-full` by default. */
  readonly serverTlsMode?: ServerTlsMode | undefined
  /** `ignore_startup_parameters`; none by default (PgBouncer then refuses every parameter it does not track). */
  readonly ignoreStartupParameters?: ReadonlyArray<string> | undefined
  /** `default_pool_size` (server connections per user/database pair); PgBouncer's default is 20. */
  readonly defaultPoolSize?: number | undefined
  /** `max_client_conn`; PgBouncer's default is 100. */
  readonly maxClientConn?: number | undefined
  /** Anything else for the `[pgbouncer]` section, e.g. `{ server_lifetime: "60" }`. */
  readonly extraConf?: Readonly<Record<string, string>> | undefined
}

/**
 * A running PgBouncer.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgBouncerTestServer {
  readonly host: "127.0.0.1"
  readonly port: number
  /** The `pgbouncer.ini` it runs with. */
  readonly configFile: string
  /** Its log (stdout and stderr). */
  readonly logFile: string
  readonly pid: number
  /** Stops it for good (also done when the scope closes). */
  readonly stop: Effect.Effect<void>
}

const CANDIDATES = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer", "/usr/local/sbin/pgbouncer"]

const findBinary: Effect.Effect<string, PgTestServerError> = Effect.suspend(() => {
  const fromEnv = process.env["PGBOUNCER_BIN"]
  const onPath = (process.env["PATH"] ?? "").split(Path.delimiter).map((dir) => Path.join(dir, "pgbouncer"))
  const found = [...(fromEnv === undefined ? [] : [fromEnv]), ...onPath, ...CANDIDATES].find((file) =>
    Fs.existsSync(file)
  )
  return found === undefined
    ? Effect.fail(failure(
      "pgbouncer",
      "the pgbouncer binary was not found (PGBOUNCER_BIN, PATH, /usr/sbin); install it: apt-get install pgbouncer"
    ))
    : Effect.succeed(found)
})

const attempt = <A>(run: () => Promise<A>): Effect.Effect<A, PgTestServerError> =>
  Effect.tryPromise({ try: run, catch: (cause) => failure("pgbouncer", describeCause(cause)) })

/** The roles' SCRAM verifiers as PostgreSQL stores them. */
const scramSecrets = (server: PgTestServer, users: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const rows = yield* server.query(
      "select rolname, rolpassword from pg_authid where rolname = any($1::text[])",
      [users]
    )
    const entries = rows.flatMap((row) => {
      const secret = row["rolpassword"]
      return typeof secret === "string" && secret.startsWith("SCRAM-SHA-256$")
        ? [{ user: String(row["rolname"]), secret }]
        : []
    })
    const missing = users.filter((user) => !entries.some((entry) => entry.user === user))
    if (missing.length > 0) {
      return yield* Effect.fail(failure(
        "pgbouncer",
        `no SCRAM-SHA-256 password stored for ${missing.join(", ")}; create the roles with a password first (createRole)`
      ))
    }
    // The verifier is not the password, but it lets anyone who holds it log in through PgBouncer.
    for (const entry of entries) LeakGuard.registerUnsafe(entry.secret, `PgBouncer auth_file entry of ${entry.user}`)
    return entries
  })

const settingsEntries = (
  settings: PgBouncerSettings,
  files: { readonly base: string; readonly authFile: string },
  port: number
): Array<readonly [string, string]> => [
  ["listen_addr", "127.0.0.1"],
  ["listen_port", String(port)],
  // no unix socket: clients come over TCP (and TLS) only
  ["unix_socket_dir", ""],
  ["auth_type", "scram-sha-256"],
  ["auth_file", files.authFile],
  ["pool_mode", settings.poolMode ?? "transaction"],
  ["client_tls_sslmode", "require"],
  ["client_tls_cert_file", Path.join(files.base, "client-facing.crt")],
  ["client_tls_key_file", Path.join(files.base, "client-facing.key")],
  ["client_tls_protocols", "tlsv1.2,tlsv1.3"],
  ["server_tls_sslmode", settings.serverTlsMode ?? "verify-full"],
  ["server_tls_ca_file", Path.join(files.base, "server-ca.crt")],
  ["server_tls_protocols", "tlsv1.2,tlsv1.3"],
  ["ignore_startup_parameters", (settings.ignoreStartupParameters ?? []).join(", ")],
  ["default_pool_size", String(settings.defaultPoolSize ?? 20)],
  ["max_client_conn", String(settings.maxClientConn ?? 100)],
  ["log_connections", "1"],
  ["log_disconnections", "1"],
  ...Object.entries(settings.extraConf ?? {})
]

const accepting = (port: number): Effect.Effect<void, PgTestServerError> =>
  Effect.async<void, PgTestServerError>((resume) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.void)
    })
    socket.once("error", (error) => resume(Effect.fail(failure("pgbouncer", `not accepting: ${describeCause(error)}`))))
  })

const writeFile = (user: Process.ServerUser, file: string, content: string, mode: number) =>
  Effect.zipRight(attempt(() => FsP.writeFile(file, content, { mode })), Process.chownToServer(user, file))

const launch = (
  settings: PgBouncerSettings,
  layout: { readonly base: string; readonly user: Process.ServerUser; readonly binary: string },
  secrets: ReadonlyArray<{ readonly user: string; readonly secret: string }>
) =>
  Effect.gen(function*() {
    const { base, binary, user } = layout
    const port = yield* freePort
    const authFile = Path.join(base, "userlist.txt")
    const configFile = Path.join(base, "pgbouncer.ini")
    const logFile = Path.join(base, "pgbouncer.log")
    yield* writeFile(user, authFile, renderAuthFile(secrets), 0o600)
    yield* writeFile(user, Path.join(base, "client-facing.crt"), settings.certificate.certPem, 0o644)
    yield* writeFile(user, Path.join(base, "client-facing.key"), settings.certificate.keyPem, 0o600)
    yield* writeFile(user, Path.join(base, "server-ca.crt"), settings.serverCa, 0o644)
    const ini = renderIni(
      [["*", `host=127.0.0.1 port=${settings.server.port}`]],
      settingsEntries(settings, { base, authFile }, port)
    )
    yield* writeFile(user, configFile, ini, 0o644)
    const daemon = yield* Process.spawnDaemon({ user, file: binary, args: [configFile], logFile, deathSignal: "KILL" })
    const stop = Effect.gen(function*() {
      if (yield* Deferred.isDone(daemon.exited)) return
      // SIGINT: PgBouncer's safe shutdown waits for clients; SIGTERM closes everything at once.
      daemon.signal("SIGTERM")
      const gone = yield* Deferred.await(daemon.exited).pipe(Effect.timeout("5 seconds"), Effect.option)
      if (gone._tag === "None") daemon.signal("SIGKILL")
    })
    const ready = accepting(port).pipe(
      Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("15 seconds")))
    )
    const died = Effect.flatMap(Deferred.await(daemon.exited), (outcome) =>
      Effect.fail(failure("pgbouncer", `pgbouncer exited during start-up (${outcome})`)))
    yield* Effect.raceFirst(ready, died).pipe(
      Effect.catchAll((error) =>
        Effect.zipRight(
          stop,
          Effect.flatMap(Process.logTail(logFile), (log) =>
            Effect.fail(failure("pgbouncer", `${error.message}\nlog ${logFile}:\n${log}`)))
        )
      )
    )
    return { host: "127.0.0.1", port, configFile, logFile, pid: daemon.pid, stop } satisfies PgBouncerTestServer
  })

const isBindFailure = (error: PgTestServerError): boolean => /Address already in use|bind/.test(error.message)

/**
 * Starts PgBouncer on a free port of 127.0.0.1 in front of `settings.server`. The roles in
 * `settings.users` must exist with a password (their SCRAM verifiers are copied into the
 * `auth_file`). The process and its temp folder are removed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (settings: PgBouncerSettings): Effect.Effect<PgBouncerTestServer, PgTestServerError, Scope.Scope> =>
  Effect.withClock(
    Effect.gen(function*() {
      const binary = yield* findBinary
      const user = yield* Process.serverUser
      const secrets = yield* scramSecrets(settings.server, settings.users)
      const base = yield* Effect.acquireRelease(
        attempt(() => FsP.mkdtemp(Path.join(Os.tmpdir(), `${Sweep.PREFIX}bouncer-`))),
        (dir) => Effect.promise(() => FsP.rm(dir, { recursive: true, force: true }))
      )
      yield* attempt(() => Sweep.writeOwner(base))
      yield* Process.chownToServer(user, base)
      const bouncer = yield* launch(settings, { base, user, binary }, secrets).pipe(
        Effect.retry({ schedule: Schedule.recurs(4), while: isBindFailure })
      )
      yield* Effect.addFinalizer(() => bouncer.stop)
      return bouncer
    }),
    // a real process: every wait is on the wall clock, also inside it.effect's TestClock
    Clock.make()
  )
