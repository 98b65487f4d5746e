import { describe, expect, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import * as Url from "node:url"
import * as Pg from "pg"
import { PgTestServer } from "@takumi/testing"
import { makeCommandLine } from "../src/internal/pg/process.js"

const repoRoot = Path.resolve(Path.dirname(Url.fileURLToPath(import.meta.url)), "../../..")

class Server extends Context.Tag("test/PgTestServerLifecycle/Server")<Server, PgTestServer.PgTestServer>() {}

const ServerLive = Layer.scoped(
  Server,
  Effect.gen(function*() {
    const server = yield* PgTestServer.make({ maxConnections: 20 })
    yield* server.createRole({ name: "app", password: "app-password" })
    return server
  })
)

const clientConfig = (server: PgTestServer.PgTestServer, overrides: Partial<Pg.ClientConfig> = {}): Pg.ClientConfig => ({
  host: server.host,
  port: server.port,
  user: "app",
  password: "app-password",
  database: "postgres",
  ssl: false,
  connectionTimeoutMillis: 5_000,
  ...overrides
})

/** Connects, runs one query and reports the row or the error code. */
const tryQuery = (config: Pg.ClientConfig, sql = "select current_user as user, current_database() as db") =>
  Effect.promise(async (): Promise<{ readonly row?: Record<string, unknown>; readonly code?: string | undefined; readonly message?: string }> => {
    const client = new Pg.Client(config)
    client.on("error", () => undefined)
    try {
      await client.connect()
      return { row: (await client.query(sql)).rows[0] }
    } catch (error) {
      return error instanceof Error
        ? { code: "code" in error ? String(error.code) : undefined, message: error.message }
        : { message: String(error) }
    } finally {
      await client.end().catch(() => undefined)
    }
  })

const withPool = <A, E>(
  server: PgTestServer.PgTestServer,
  use: (pool: Pg.Pool, errors: Deferred.Deferred<string>) => Effect.Effect<A, E>
) =>
  Effect.acquireUseRelease(
    Effect.gen(function*() {
      const errors = yield* Deferred.make<string>()
      const pool = new Pg.Pool({ ...clientConfig(server), max: 2 })
      // Without this listener a server restart would crash the test process.
      pool.on("error", (error) => {
        Deferred.unsafeDone(errors, Effect.succeed("code" in error ? String(error.code) : error.message))
      })
      return { pool, errors }
    }),
    ({ errors, pool }) => use(pool, errors),
    ({ pool }) => Effect.promise(() => pool.end())
  )

const poolQuery = (pool: Pg.Pool) => Effect.promise(() => pool.query("select 1 as one").then((result) => result.rows))

const isGone = (pid: number): boolean => {
  try {
    // A process that died after its parent did may linger as a zombie until reaped: dead all the same.
    return Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z") ?? true
  } catch {
    return true
  }
}

const childrenOf = (pid: number): ReadonlyArray<number> =>
  Fs.readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        return Fs.readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.split(" ")[1] === String(pid)
      } catch {
        return false
      }
    })
    .map(Number)

/** Polls (bounded, 20 s) until every pid is gone; returns the ones still alive. */
const untilGone = (pids: ReadonlyArray<number>) => {
  const alive = Effect.sync(() => pids.filter((pid) => !isGone(pid)))
  return alive.pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (remaining) => remaining.length === 0 }),
    Effect.timeout("20 seconds"),
    Effect.ignore,
    Effect.zipRight(alive)
  )
}

// Live services: these tests wait on real server events with real timeouts.
layer(ServerLive, { timeout: 60_000, excludeTestServices: true })("PgTestServer lifecycle", (it) => {
  it.effect("creates a login role whose SCRAM password works and a wrong one fails with 28P01", () =>
    Effect.gen(function*() {
      const server = yield* Server
      expect((yield* tryQuery(clientConfig(server))).row).toEqual({ user: "app", db: "postgres" })
      expect((yield* tryQuery(clientConfig(server, { password: "nope" }))).code).toBe("28P01")
      const [stored] = yield* server.query("select rolpassword from pg_authid where rolname = $1", ["app"])
      expect(String(stored?.["rolpassword"])).toMatch(/^SCRAM-SHA-256\$/)
    }))

  it.effect("creates a database owned by the given role", () =>
    Effect.gen(function*() {
      const server = yield* Server
      yield* server.createRole({ name: "Owner Role", password: "owner-password" })
      yield* server.createDatabase("app db", "Owner Role")
      const outcome = yield* tryQuery(clientConfig(server, { user: "Owner Role", password: "owner-password", database: "app db" }))
      expect(outcome.row).toEqual({ user: "Owner Role", db: "app db" })
      const [owner] = yield* server.query(
        "select pg_get_userbyid(datdba) as owner from pg_database where datname = $1",
        ["app db"]
      )
      expect(owner?.["owner"]).toBe("Owner Role")
    }))

  it.effect("reports a failed query with the server's message but without the statement, so no password is echoed", () =>
    Effect.gen(function*() {
      const server = yield* Server
      const error = yield* Effect.flip(server.query("ALTER ROLE no_such_role WITH PASSWORD 'echo-me-not-4711'"))
      expect(error.message).toContain(`role "no_such_role" does not exist`)
      expect(error.message).not.toContain("echo-me-not-4711")
      expect(error.message).not.toContain("ALTER ROLE")
      const duplicate = yield* Effect.flip(server.createRole({ name: "app", password: "echo-me-not-4712" }))
      expect(duplicate.message).toContain(`role "app" already exists`)
      expect(duplicate.message).not.toContain("echo-me-not-4712")
    }))

  it.effect("applies per-user pg_hba rules on reload and restores the default rules with hba: undefined", () =>
    Effect.gen(function*() {
      const server = yield* Server
      yield* server.reload({ hba: [{ type: "host", method: "reject", user: "app" }, { type: "host", method: "scram-sha-256" }] })
      expect((yield* tryQuery(clientConfig(server))).code).toBe("28000")
      yield* server.reload({ hba: undefined })
      expect((yield* tryQuery(clientConfig(server))).row).toEqual({ user: "app", db: "postgres" })
    }))

  it.effect("fails a reload with an invalid setting, naming it, and keeps serving", () =>
    Effect.gen(function*() {
      const server = yield* Server
      const error = yield* Effect.flip(server.reload({ extraConf: { work_mem: "plenty" } }))
      expect(error._tag).toBe("PgTestServerError")
      expect(error.message).toContain("work_mem")
      expect((yield* server.settings).extraConf).toBeUndefined()
      expect((yield* tryQuery(clientConfig(server))).row).toEqual({ user: "app", db: "postgres" })
    }))

  it.effect("applies max_connections on start and, after a reload records a new value, on restart", () =>
    Effect.gen(function*() {
      const server = yield* Server
      expect(yield* server.query("show max_connections")).toEqual([{ max_connections: "20" }])
      yield* server.reload({ maxConnections: 25 })
      expect(yield* server.query("show max_connections")).toEqual([{ max_connections: "20" }])
      yield* server.restart()
      expect(yield* server.query("show max_connections")).toEqual([{ max_connections: "25" }])
    }))

  it.effect("keeps a connected pool working across a reload", () =>
    Effect.gen(function*() {
      const server = yield* Server
      yield* withPool(server, (pool) =>
        Effect.gen(function*() {
          expect(yield* poolQuery(pool)).toEqual([{ one: 1 }])
          yield* server.reload({ extraConf: { log_connections: "on" } })
          expect(yield* poolQuery(pool)).toEqual([{ one: 1 }])
          expect(yield* server.query("show log_connections")).toEqual([{ log_connections: "on" }])
          yield* server.reload({ extraConf: undefined })
        }))
    }))

  it.effect("restarts on the same port under a connected pool: idle clients get 57P01, the next query succeeds", () =>
    Effect.gen(function*() {
      const server = yield* Server
      yield* withPool(server, (pool, errors) =>
        Effect.gen(function*() {
          expect(yield* poolQuery(pool)).toEqual([{ one: 1 }])
          const before = Option.getOrThrow(yield* server.pid)
          yield* server.restart({ downFor: "100 millis" })
          expect(yield* Deferred.await(errors).pipe(Effect.timeout("10 seconds"))).toBe("57P01")
          expect(Option.getOrThrow(yield* server.pid)).not.toBe(before)
          expect(isGone(before)).toBe(true)
          expect(yield* poolQuery(pool)).toEqual([{ one: 1 }])
        }))
    }))

  it.effect("pauses (connections refused) and resumes on the same port", () =>
    Effect.gen(function*() {
      const server = yield* Server
      yield* server.pause
      expect(yield* server.pid).toEqual(Option.none())
      expect((yield* tryQuery(clientConfig(server))).code).toBe("ECONNREFUSED")
      yield* server.resume
      expect((yield* tryQuery(clientConfig(server))).row).toEqual({ user: "app", db: "postgres" })
    }))

  it.effect("freezes: new connections are accepted but never answered until thaw", () =>
    Effect.gen(function*() {
      const server = yield* Server
      yield* server.freeze
      const frozen = yield* tryQuery(clientConfig(server, { connectionTimeoutMillis: 300 }))
      yield* server.thaw
      expect(frozen.row).toBeUndefined()
      expect(frozen.message).toContain("timeout")
      expect((yield* tryQuery(clientConfig(server))).row).toEqual({ user: "app", db: "postgres" })
    }))

  it.effect("keeps the data folder, socket folder and configuration owned by the server user (not root)", () =>
    Effect.gen(function*() {
      const server = yield* Server
      const owner = Fs.statSync(server.dataDir).uid
      for (const path of [server.dataDir, server.socketDir, Path.join(server.dataDir, "pg_hba.conf")]) {
        expect(Fs.statSync(path).uid).toBe(owner)
      }
      if (process.getuid?.() === 0) expect(owner).not.toBe(0)
      expect(Fs.readFileSync(Path.join(server.dataDir, "pg_hba.conf"), "utf8")).toContain("local all postgres trust")
    }))
})

describe("PgTestServer teardown", () => {
  it.live("stop leaves no postgres process and no temp folder, and the server refuses further use", () =>
    Effect.gen(function*() {
      const server = yield* PgTestServer.make()
      const postmaster = Option.getOrThrow(yield* server.pid)
      const processes = [postmaster, ...childrenOf(postmaster)]
      expect(processes.length).toBeGreaterThan(1)
      const base = Path.dirname(server.dataDir)
      yield* server.stop
      expect(yield* untilGone(processes)).toEqual([])
      expect(Fs.existsSync(base)).toBe(false)
      const error = yield* Effect.flip(server.query("select 1"))
      expect(error.message).toContain("stopped")
    }).pipe(Effect.scoped))

  it.live("stops a frozen server without waiting for a timeout", () =>
    Effect.gen(function*() {
      const server = yield* PgTestServer.make()
      const postmaster = Option.getOrThrow(yield* server.pid)
      yield* server.freeze
      yield* server.stop.pipe(Effect.timeout("10 seconds"))
      expect(isGone(postmaster)).toBe(true)
    }).pipe(Effect.scoped))

  it.live("closing the scope stops the server and deletes its folder", () =>
    Effect.gen(function*() {
      const { base, processes } = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* PgTestServer.make()
        const postmaster = Option.getOrThrow(yield* server.pid)
        return { base: Path.dirname(server.dataDir), processes: [postmaster, ...childrenOf(postmaster)] }
      }))
      expect(yield* untilGone(processes)).toEqual([])
      expect(Fs.existsSync(base)).toBe(false)
    }))

  it.live("leaves no postgres process behind when the process that started the server is SIGKILLed", () =>
    Effect.gen(function*() {
      const script = [
        `import { PgTestServer } from "@takumi/testing"`,
        `import * as Effect from "effect/Effect"`,
        `import * as Option from "effect/Option"`,
        `const server = await PgTestServer.start()`,
        `const postmaster = Option.getOrThrow(Effect.runSync(server.pid))`,
        `process.stdout.write(JSON.stringify({ pid: process.pid, postmaster, dataDir: server.dataDir }) + "\\n")`,
        `setInterval(() => undefined, 60_000)`
      ].join("\n")
      const child = ChildProcess.spawn(
        process.execPath,
        ["--conditions=@takumi/source", "--import", "tsx", "--input-type=module", "-e", script],
        { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] }
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
      const line = yield* Effect.promise(() =>
        new Promise<string>((resolve) => {
          const lines = Readline.createInterface({ input: child.stdout })
          lines.once("line", (text) => {
            lines.close()
            resolve(text)
          })
          child.once("exit", () => resolve("{}"))
        })
      )
      const started: { pid?: number; postmaster?: number; dataDir?: string } = JSON.parse(line)
      // A SIGKILLed owner cannot delete its server's folder; this test does.
      const dataDir = started.dataDir
      if (dataDir !== undefined) {
        yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(Path.dirname(dataDir), { recursive: true, force: true })))
      }
      expect(started.pid).toBe(child.pid)
      const postmaster = started.postmaster ?? -1
      expect(isGone(postmaster)).toBe(false)
      const processes = [postmaster, ...childrenOf(postmaster)]
      expect(processes.length).toBeGreaterThan(1)
      child.kill("SIGKILL")
      expect(yield* untilGone(processes)).toEqual([])
    }).pipe(Effect.scoped), 60_000)

  it.live("sweeps temp folders whose owning process is dead and keeps those of live owners", () =>
    Effect.gen(function*() {
      const dead = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const child = ChildProcess.spawn("true")
          child.once("exit", () => resolve(child.pid ?? -1))
        })
      )
      const orphan = Fs.mkdtempSync(Path.join(Os.tmpdir(), "takumi-pg-sweeptest-"))
      const mine = Fs.mkdtempSync(Path.join(Os.tmpdir(), "takumi-pg-sweeptest-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(mine, { recursive: true, force: true })))
      Fs.writeFileSync(Path.join(orphan, "owner.pid"), `${dead}\n`)
      Fs.writeFileSync(Path.join(mine, "owner.pid"), `${process.pid}\n`)
      expect(yield* PgTestServer.sweepStale).toBeGreaterThanOrEqual(1)
      expect(Fs.existsSync(orphan)).toBe(false)
      expect(Fs.existsSync(mine)).toBe(true)
    }).pipe(Effect.scoped))

  it.live("sweep stops (SIGQUIT) a postmaster still running for a dead owner, then removes its folder", () =>
    Effect.gen(function*() {
      const dead = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const child = ChildProcess.spawn("true")
          child.once("exit", () => resolve(child.pid ?? -1))
        })
      )
      const server = yield* PgTestServer.make()
      const postmaster = Option.getOrThrow(yield* server.pid)
      const processes = [postmaster, ...childrenOf(postmaster)]
      const base = Path.dirname(server.dataDir)
      // As if the test worker that started this server had been SIGKILLed without setpriv.
      Fs.writeFileSync(Path.join(base, "owner.pid"), `${dead}\n`)
      expect(yield* PgTestServer.sweepStale).toBeGreaterThanOrEqual(1)
      expect(isGone(postmaster)).toBe(true)
      expect(yield* untilGone(processes)).toEqual([])
      expect(Fs.existsSync(base)).toBe(false)
    }).pipe(Effect.scoped))

  it.effect("without setpriv, runs the server unprotected and logs the missing parent-death signal once", () => {
    const warnings: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") warnings.push(String(message))
    })
    return Effect.gen(function*() {
      const commandLine = makeCommandLine(undefined)
      const postmaster = yield* commandLine({ _tag: "Self" }, "/pg/bin/postgres", ["-D", "/pg/data"], "QUIT")
      const initdb = yield* commandLine({ _tag: "Self" }, "/pg/bin/initdb", ["-D", "/pg/template"])
      expect(postmaster).toEqual(["/pg/bin/postgres", ["-D", "/pg/data"]])
      expect(initdb).toEqual(["/pg/bin/initdb", ["-D", "/pg/template"]])
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain("without a parent-death signal")
      expect(warnings[0]).toContain("sweepStale")
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })

  it.effect("with setpriv, gives the postmaster a SIGQUIT parent-death signal and logs nothing", () => {
    const warnings: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") warnings.push(String(message))
    })
    return Effect.gen(function*() {
      const [command, argv] = yield* makeCommandLine("/usr/bin/setpriv")(
        { _tag: "Self" },
        "/pg/bin/postgres",
        ["-D", "/pg/data"],
        "QUIT"
      )
      expect(command).toBe("/usr/bin/setpriv")
      expect(argv).toEqual(["--pdeathsig", "QUIT", "--", "/pg/bin/postgres", "-D", "/pg/data"])
      expect(warnings).toEqual([])
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })

  it("offers a Promise API for plain vitest: start() gives a running server, close() removes it", async () => {
    const server = await PgTestServer.start()
    const rows = await Effect.runPromise(server.query("select 1 as one"))
    expect(rows).toEqual([{ one: 1 }])
    const base = Path.dirname(server.dataDir)
    await server.close()
    expect(Fs.existsSync(base)).toBe(false)
  })

  it.live("reports a failed start with the server log and leaves no folder behind", () =>
    Effect.gen(function*() {
      const mine = () =>
        Fs.readdirSync(Os.tmpdir()).filter((entry) => {
          try {
            return entry.startsWith("takumi-pg-") &&
              Fs.readFileSync(Path.join(Os.tmpdir(), entry, "owner.pid"), "utf8").trim() === String(process.pid)
          } catch {
            return false
          }
        })
      const before = mine()
      const error = yield* Effect.flip(PgTestServer.make({ extraConf: { shared_buffers: "a lot" } }))
      expect(error.operation).toBe("start")
      expect(error.message).toContain("postgres exited during start-up")
      expect(error.message).toContain("invalid value for parameter \"shared_buffers\"")
      expect(mine()).toEqual(before)
      const noCertificate = yield* Effect.flip(PgTestServer.make({ ssl: true }))
      expect(noCertificate.message).toContain("no certificate")
      expect(mine()).toEqual(before)
    }).pipe(Effect.scoped))

  it.effect("explains how to install PostgreSQL when PG_BIN holds no server binaries", () =>
    Effect.gen(function*() {
      const previous = process.env["PG_BIN"]
      process.env["PG_BIN"] = "/nonexistent/postgresql/bin"
      const error = yield* Effect.flip(PgTestServer.make()).pipe(
        Effect.ensuring(Effect.sync(() => {
          if (previous === undefined) delete process.env["PG_BIN"]
          else process.env["PG_BIN"] = previous
        }))
      )
      expect(error._tag).toBe("PgTestServerError")
      expect(error.message).toContain("PG_BIN=/nonexistent/postgresql/bin")
      expect(error.message).toContain("apt-get install postgresql")
    }).pipe(Effect.scoped))
})
