/**
 * The soak: many concurrent workers run statements through the whole stack (`TakumiDb.layer` in
 * production: TLS, the password from the Vault double through the real node-vault client and
 * SecretCache) against a real PostgreSQL (PgTestServer) while faults are injected on a timeline:
 * two password rotations (Vault double + ALTER ROLE), the Vault double answering 503 (sealed), a
 * fast restart of the primary, a `kill -9` of the postmaster (then started again), and backends
 * terminated with `pg_terminate_backend`. The fault times are fractions of the duration, so a
 * short run (in `npm test`) and the 60 s run (`npm run soak`) inject the same faults, scaled.
 *
 * What it counts: statements run, failures by typed tag, untyped failures, crashes (defects and
 * uncaught exceptions), statements not marked idempotent that ran twice (a server-side table of
 * statement ids: each worker inserts ids unique to it, without a unique constraint, so a re-run
 * would show as a duplicate row), secrets found in any output (LeakGuard.scan over the process's
 * stdout/stderr, every log line and the renderings of failures), file descriptors and RSS.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Idempotent, TakumiDb } from "@takumi/db"
import { LeakGuard, TestDatabase, VaultDouble } from "@takumi/testing"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import { inspect } from "node:util"

/** How long, how many workers, and how many backends to terminate. */
export interface SoakOptions {
  readonly workers: number
  readonly duration: Duration.DurationInput
  /** How long the Vault double answers 503 (10 s in the full soak). */
  readonly vaultOutage: Duration.DurationInput
  readonly terminations: number
}

/** Process resources at one moment. */
export interface Resources {
  readonly fds: number
  readonly rssMiB: number
}

/** What a soak counted. */
export interface SoakReport {
  readonly workers: number
  readonly seconds: number
  readonly statements: number
  readonly succeeded: number
  readonly failuresByTag: Readonly<Record<string, number>>
  readonly untyped: number
  /** The distinct messages of untyped failures (at most a few), to say what escaped the typing. */
  readonly untypedSamples: ReadonlyArray<string>
  readonly crashes: number
  readonly duplicates: number
  /** Inserts acknowledged to the worker but absent afterwards (the test server runs with fsync and synchronous_commit off: a kill -9 may lose them). */
  readonly acknowledgedMissing: number
  readonly leaks: ReadonlyArray<LeakGuard.Leak>
  /** How much output the leak scan covered: pieces (log lines, writes, failure renderings) and characters. */
  readonly scanned: { readonly pieces: number; readonly characters: number }
  readonly vaultReadsRefused: number
  /** The server log says the start after the kill -9 ran crash recovery. */
  readonly crashRecovered: boolean
  readonly faults: ReadonlyArray<string>
  readonly start: Resources
  readonly end: Resources
}

const APPLICATION = "takumi-soak"
const VAULT_PATH = "secret/takumi/production"
const TOKEN = "hvs.soak-token-c41e7b92"
const PASSWORDS = ["soak-first-Pw-7d21c9e0", "soak-rotated-Pw-1f6a3b58", "soak-rotated-Pw-9e04d7a3"] as const

const resources = (): Resources => ({
  fds: Fs.readdirSync("/proc/self/fd").length,
  rssMiB: Math.round(process.memoryUsage().rss / 1024 / 1024)
})

/** Keeps at most this many renderings of failures per tag for the leak scan (they repeat). */
const RENDERINGS_PER_TAG = 50

/** Mutable counters shared by the workers (fibers on one thread: no races). */
class Tally {
  statements = 0
  succeeded = 0
  untyped = 0
  crashes = 0
  vaultReadsRefused = 0
  readonly failuresByTag: Record<string, number> = {}
  readonly acknowledged: Array<string> = []
  readonly untypedSamples = new Set<string>()
  readonly outputs: Array<LeakGuard.Output> = []
  readonly faults: Array<string> = []

  failure(error: unknown): void {
    const tag = typedTag(error)
    if (tag === undefined) {
      this.untyped++
      if (this.untypedSamples.size < 5) this.untypedSamples.add(sample(error))
    }
    const key = tag ?? "untyped"
    const seen = this.failuresByTag[key] ?? 0
    this.failuresByTag[key] = seen + 1
    if (seen < RENDERINGS_PER_TAG) this.output(`failure ${key}`, render(error))
  }

  output(origin: string, text: string): void {
    this.outputs.push({ origin, text })
  }
}

const tagOf = (u: unknown): string | undefined =>
  typeof u === "object" && u !== null && "_tag" in u && typeof u._tag === "string" ? u._tag : undefined

const SQLSTATE = /^[0-9A-Z]{5}$/

/**
 * The typed tag of a statement's failure: a Takumi (or @effect/sql) tagged error; for a `SqlError`
 * its cause's tag (`SqlError/ConnectionLost`) or, for a server error, its SQLSTATE
 * (`SqlError/57P01`), as the README documents `SqlError.cause`. Anything else is untyped.
 */
const typedTag = (error: unknown): string | undefined => {
  if (!(error instanceof SqlError)) return tagOf(error)
  const cause: unknown = error.cause
  const causeTag = tagOf(cause)
  if (causeTag !== undefined) return `SqlError/${causeTag}`
  const code = typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined
  return typeof code === "string" && SQLSTATE.test(code) ? `SqlError/${code}` : undefined
}

/** An error and its cause, in one line: what it is and what it says. */
const sample = (error: unknown): string => {
  const cause: unknown = error instanceof SqlError ? error.cause : undefined
  const describe = (u: unknown) => u instanceof Error ? `${u.constructor.name}: ${u.message}` : inspect(u)
  return cause === undefined ? describe(error) : `${describe(error)} <- ${describe(cause)}`
}

const render = (error: unknown): string => {
  const json = (() => {
    try {
      return JSON.stringify(error)
    } catch {
      return "(not JSON)"
    }
  })()
  const message = error instanceof Error ? error.message : String(error)
  return [message, inspect(error, { depth: 6 }), json].join("\n")
}

const environment = (server: { readonly host: string; readonly port: number }, ca: string, vault: string) =>
  ConfigProvider.fromMap(
    new Map(Object.entries({
      NODE_ENV: "production",
      DB_HOST: server.host,
      DB_PORT: String(server.port),
      DB_NAME: "app",
      DB_USER: "app",
      DB_SSL_CA: ca,
      DB_POOL_MIN: "2",
      DB_POOL_MAX: "16",
      DB_CONNECTION_TIMEOUT: "5000",
      DB_APPLICATION_NAME: APPLICATION,
      SECRETS_BACKEND: "vault",
      // a short TTL, so the cache goes back to Vault during the outage (and serves the stale password)
      SECRETS_CACHE_TTL: "1000",
      VAULT_ADDR: vault,
      VAULT_TOKEN: TOKEN,
      VAULT_PATH,
      VAULT_CACERT: ca
    }))
  )

/** A logger that keeps every line (message, annotations, cause) as output to scan, printing nothing. */
const capturingLogger = (tally: Tally) =>
  Logger.make(({ annotations, cause, logLevel, message }) => {
    const parts = (Array.isArray(message) ? message : [message]).map((m) => typeof m === "string" ? m : inspect(m))
    parts.push(inspect(annotations))
    if (!Cause.isEmpty(cause)) parts.push(Cause.pretty(cause))
    tally.output(`log ${logLevel.label}`, parts.join(" "))
  })

/** Runs `self`, counting its outcome: success, a failure by tag, or a defect (a crash). */
const counted = (tally: Tally, self: Effect.Effect<unknown, unknown>): Effect.Effect<boolean> =>
  Effect.exit(self).pipe(Effect.map((exit) => {
    tally.statements++
    if (Exit.isSuccess(exit)) {
      tally.succeeded++
      return true
    }
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) tally.failure(failure.value)
    else if (!Cause.isInterruptedOnly(exit.cause)) {
      tally.crashes++
      tally.output("defect", Cause.pretty(exit.cause))
    }
    return false
  }))

/** One worker: a non-idempotent insert of an id unique to it, then an idempotent read, until the deadline. */
const worker = (tally: Tally, sql: SqlClient.SqlClient, index: number, deadline: number) =>
  Effect.gen(function*() {
    for (let seq = 0; (yield* Clock.currentTimeMillis) < deadline; seq++) {
      const id = `${index}-${seq}`
      if (yield* counted(tally, sql`INSERT INTO soak_statements (id) VALUES (${id})`)) tally.acknowledged.push(id)
      yield* counted(tally, Idempotent.retry(sql`SELECT ${id}::text AS id`))
    }
  })

type Db = Effect.Effect.Success<ReturnType<typeof TestDatabase.make>>

const note = (tally: Tally, started: number, what: string) =>
  Effect.map(Clock.currentTimeMillis, (now) => void tally.faults.push(`${((now - started) / 1000).toFixed(1)}s ${what}`))

/** ALTER ROLE first, then the new Vault version: the client holds the old password in its cache. */
const rotate = (db: Db, vault: VaultDouble.VaultDouble, password: string) =>
  Effect.gen(function*() {
    yield* LeakGuard.register(password, "soak rotated password")
    yield* db.server.query(`ALTER ROLE app PASSWORD '${password}'`)
    yield* vault.put(VAULT_PATH, { DB_PASSWORD: password, DB_USER: "app" })
  })

/**
 * SIGKILL to the postmaster, then start it again (retried: the orphaned backends must exit first).
 * Returns the old and the new postmaster's pid.
 */
const killAndRestart = (db: Db) =>
  Effect.gen(function*() {
    const killed = Option.getOrThrow(yield* db.server.pid)
    process.kill(killed, "SIGKILL")
    yield* db.server.resume.pipe(
      Effect.zipRight(db.server.query("SELECT 1")),
      Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo("60 seconds")))
    )
    return `pid ${killed} -> ${Option.getOrThrow(yield* db.server.pid)}`
  })

const terminateOne = (db: Db) =>
  db.server.query(
    `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = '${APPLICATION}' ` +
      "AND pid <> pg_backend_pid() ORDER BY random() LIMIT 1"
  ).pipe(Effect.map((rows) => rows[0]?.["done"] === true), Effect.orElseSucceed(() => false))

/** Terminates `count` backends, spread over the run (a tick with no backend to terminate retries soon). */
const terminations = (db: Db, tally: Tally, started: number, count: number, every: Duration.Duration) =>
  Effect.gen(function*() {
    for (let done = 0; done < count;) {
      yield* Effect.sleep(every)
      if (yield* terminateOne(db)) {
        done++
        yield* note(tally, started, `pg_terminate_backend #${done}`)
      }
    }
  })

const at = (fraction: number, total: Duration.Duration) => Duration.millis(Math.round(Duration.toMillis(total) * fraction))

/** The fault timeline, as fractions of the duration; each step waits for the previous one. */
const faultTimeline = (db: Db, vault: VaultDouble.VaultDouble, tally: Tally, started: number, options: SoakOptions) =>
  Effect.gen(function*() {
    const total = Duration.decode(options.duration)
    const until = (fraction: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sleep(Duration.millis(Math.max(0, started + Duration.toMillis(at(fraction, total)) - now))))
    const step = <A>(fraction: number, what: string, effect: Effect.Effect<A, unknown>) =>
      until(fraction).pipe(Effect.zipRight(note(tally, started, what)), Effect.zipRight(Effect.orDie(effect)))
    yield* step(0.1, "rotation 1 (ALTER ROLE + Vault)", rotate(db, vault, PASSWORDS[1]))
    yield* step(0.15, "Vault double answers 503", vault.fault("sealed"))
    const before = yield* vault.requestCount()
    yield* step(0.2, "fast restart of the primary", db.server.restart())
    yield* Effect.sleep(options.vaultOutage).pipe(Effect.zipRight(vault.clearFaults))
    tally.vaultReadsRefused = (yield* vault.requestCount()) - before
    yield* note(tally, started, `Vault double answers again (${tally.vaultReadsRefused} reads answered 503)`)
    yield* step(0.45, "rotation 2 (ALTER ROLE + Vault)", rotate(db, vault, PASSWORDS[2]))
    const pids = yield* step(0.55, "kill -9 of the postmaster", killAndRestart(db))
    yield* note(tally, started, `primary accepting again (${pids})`)
  })

/** Counts the captured process output (stdout/stderr) during `self` as output to scan. */
const capturingProcessOutput = <A, E, R>(tally: Tally, self: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const record = (origin: string) => (text: string) => tally.output(origin, text)
      const crash = (error: unknown) => {
        tally.crashes++
        tally.output("uncaught", render(error))
      }
      process.on("uncaughtException", crash)
      process.on("unhandledRejection", crash)
      const stop = [
        LeakGuard.captureWrites(process.stdout, record("stdout")),
        LeakGuard.captureWrites(process.stderr, record("stderr"))
      ]
      return () => {
        process.off("uncaughtException", crash)
        process.off("unhandledRejection", crash)
        for (const undo of stop) undo()
      }
    }),
    () => self,
    (release) => Effect.sync(release)
  )

/** Statement ids seen more than once, and acknowledged ids that are absent (read once the faults are over). */
const audit = (sql: SqlClient.SqlClient, acknowledged: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const rows = yield* Idempotent.retry(sql<{ id: string; n: number }>`SELECT id, count(*)::int AS n FROM soak_statements GROUP BY id`)
    const counts = new Map(rows.map((row) => [row.id, row.n]))
    const duplicates = [...counts.values()].filter((n) => n > 1).length
    return { duplicates, acknowledgedMissing: acknowledged.filter((id) => !counts.has(id)).length }
  })

/**
 * Runs the soak and returns what it counted. The secrets it creates are registered with the leak
 * guard (for the vitest run) and also scanned for here (for `npm run soak`, outside vitest).
 */
export const run = (options: SoakOptions): Effect.Effect<SoakReport, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const tally = new Tally()
    const start = resources()
    const db = yield* TestDatabase.make({ roles: [{ name: "app", password: PASSWORDS[0] }], database: "app" })
    const vault = yield* VaultDouble.make({ token: TOKEN, tls: db.pki.server })
    yield* vault.put(VAULT_PATH, { DB_PASSWORD: PASSWORDS[0], DB_USER: "app" })
    const soak = Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE soak_statements (id text NOT NULL)`
      const started = yield* Clock.currentTimeMillis
      const deadline = started + Duration.toMillis(Duration.decode(options.duration))
      const every = Duration.millis(Duration.toMillis(Duration.decode(options.duration)) * 0.9 / options.terminations)
      const faults = yield* Effect.fork(faultTimeline(db, vault, tally, started, options))
      const killer = yield* Effect.fork(terminations(db, tally, started, options.terminations, every))
      yield* Effect.forEach(
        Array.from({ length: options.workers }, (_, i) => i),
        (i) => worker(tally, sql, i, deadline),
        { concurrency: "unbounded", discard: true }
      )
      yield* Fiber.join(faults)
      yield* Fiber.join(killer)
      return { started, ...(yield* audit(sql, tally.acknowledged)) }
    })
    const { acknowledgedMissing, duplicates, started } = yield* capturingProcessOutput(
      tally,
      soak.pipe(
        Effect.provide(TakumiDb.layer),
        Effect.withConfigProvider(environment(db.server, db.pki.ca.certPath, vault.address)),
        Effect.provide(Logger.replace(Logger.defaultLogger, capturingLogger(tally))),
        Effect.provide(Logger.minimumLogLevel(LogLevel.Debug)),
        Effect.scoped
      )
    )
    const secrets = [...PASSWORDS, TOKEN].map((value, i) => ({ label: `soak secret #${i}`, value }))
    return {
      workers: options.workers,
      seconds: ((yield* Clock.currentTimeMillis) - started) / 1000,
      statements: tally.statements,
      succeeded: tally.succeeded,
      failuresByTag: tally.failuresByTag,
      untyped: tally.untyped,
      untypedSamples: [...tally.untypedSamples],
      crashes: tally.crashes,
      duplicates,
      acknowledgedMissing,
      leaks: LeakGuard.scan(tally.outputs, secrets),
      scanned: { pieces: tally.outputs.length, characters: tally.outputs.reduce((n, o) => n + o.text.length, 0) },
      vaultReadsRefused: tally.vaultReadsRefused,
      crashRecovered: Fs.readFileSync(db.server.logFile, "utf8").includes("not properly shut down"),
      faults: tally.faults,
      start,
      end: resources()
    }
  })

/** The report as printed lines. */
export const format = (report: SoakReport): string =>
  [
    `soak: ${report.workers} workers for ${report.seconds.toFixed(1)} s`,
    ...report.faults.map((fault) => `  fault at ${fault}`),
    `statements run: ${report.statements} (succeeded ${report.succeeded})`,
    "failures by typed tag:",
    ...Object.entries(report.failuresByTag).sort(([a], [b]) => a.localeCompare(b)).map(([tag, n]) => `  ${tag}: ${n}`),
    `untyped failures: ${report.untyped}`,
    ...report.untypedSamples.map((text) => `  e.g. ${text}`),
    `crashes: ${report.crashes}`,
    `non-idempotent statements run twice: ${report.duplicates}`,
    `acknowledged inserts missing after kill -9 (fsync off on the test server): ${report.acknowledgedMissing}`,
    `Vault reads answered 503: ${report.vaultReadsRefused}; crash recovery after kill -9: ${report.crashRecovered}`,
    `secrets found in output (${report.scanned.pieces} pieces, ${report.scanned.characters} characters scanned): ${report.leaks.length}${report.leaks.length === 0 ? "" : ` ${LeakGuard.formatReport(report.leaks)}`}`,
    `file descriptors: ${report.start.fds} -> ${report.end.fds}`,
    `RSS: ${report.start.rssMiB} MiB -> ${report.end.rssMiB} MiB`
  ].join("\n")
