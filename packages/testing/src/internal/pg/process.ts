/**
 * Running PostgreSQL programs: as the `postgres` user when this process is root (initdb and
 * postgres refuse to run as root), with a parent-death signal (`setpriv`) so that nothing
 * outlives a crashed test worker; where there is no `setpriv`, with a one-time warning.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Path from "node:path"
import { describeCause, failure, type PgTestServerError } from "./testServerError.js"

/** Who the server processes run as. @internal */
export type ServerUser =
  | { readonly _tag: "Postgres"; readonly uid: number; readonly gid: number }
  | { readonly _tag: "Self" }

const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0

/** @internal */
export const serverUser: Effect.Effect<ServerUser, PgTestServerError> = Effect.suspend(() => {
  if (!isRoot()) return Effect.succeed<ServerUser>({ _tag: "Self" })
  return Effect.tryPromise({
    try: () => FsP.readFile("/etc/passwd", "utf8"),
    catch: (cause) => failure("serverUser", `cannot read /etc/passwd: ${describeCause(cause)}`)
  }).pipe(
    Effect.flatMap((passwd) => {
      const line = passwd.split("\n").find((entry) => entry.startsWith("postgres:"))
      const [, , uid, gid] = line?.split(":") ?? []
      return uid !== undefined && gid !== undefined
        ? Effect.succeed<ServerUser>({ _tag: "Postgres", uid: Number(uid), gid: Number(gid) })
        : Effect.fail(
          failure(
            "serverUser",
            "this process runs as root and PostgreSQL refuses to run as root, but there is no `postgres` " +
              "user to run it as. Install PostgreSQL with `apt-get install postgresql` (it creates the user) " +
              "or run the tests as an unprivileged user."
          )
        )
    })
  )
})

const SETPRIV_CANDIDATES = ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]
const setpriv: string | undefined = SETPRIV_CANDIDATES.find((candidate) => Fs.existsSync(candidate))

/**
 * Builds {@link commandLine} for a `setpriv` at `setprivPath` (or none). Without one, a server
 * running as this process's user is spawned with no parent-death signal; the first such spawn
 * logs a warning (once per builder, so once per process for {@link commandLine}).
 *
 * @internal
 */
export const makeCommandLine = (setprivPath: string | undefined) => {
  let warned = false
  const warnOnce = Effect.suspend(() => {
    if (warned) return Effect.void
    warned = true
    return Effect.logWarning(
      "PgTestServer: setpriv (util-linux) was not found, so PostgreSQL is started without a parent-death signal: " +
        "a test process killed with SIGKILL leaves its postgres running until the next PgTestServer.sweepStale " +
        "(the vitest global setup runs it) stops it. On Linux install util-linux (apt-get install util-linux)."
    )
  })
  return (
    user: ServerUser,
    file: string,
    args: ReadonlyArray<string>,
    deathSignal: "QUIT" | "KILL" = "KILL"
  ): Effect.Effect<readonly [string, ReadonlyArray<string>], PgTestServerError> => {
    if (setprivPath === undefined) {
      return user._tag === "Self"
        ? Effect.as(warnOnce, [file, args] as const)
        : Effect.fail(
          failure("spawn", "setpriv (util-linux) is required to run PostgreSQL as the postgres user; apt-get install util-linux")
        )
    }
    const identity = user._tag === "Postgres"
      ? ["--reuid", String(user.uid), "--regid", String(user.gid), "--clear-groups"]
      : []
    return Effect.succeed([setprivPath, [...identity, "--pdeathsig", deathSignal, "--", file, ...args]] as const)
  }
}

/**
 * The argv that runs `file` as the server user. `setpriv --pdeathsig` makes the kernel signal it
 * when the spawning process dies, even by SIGKILL: SIGQUIT for the postmaster (PostgreSQL's
 * immediate shutdown, which also takes down every backend), SIGKILL for one-shot programs.
 * Without `setpriv` (not root, no util-linux, e.g. macOS) the program runs unprotected and a
 * warning is logged once; `sweepStale` then stops what a killed test process left running.
 *
 * @internal
 */
export const commandLine = makeCommandLine(setpriv)

// Child processes get a clean environment: no PGSSLMODE, PGPASSWORD or locale surprises leak
// from the developer's shell into initdb, pg_basebackup or the server.
const childEnv = { LC_ALL: "C", LANG: "C", TZ: "UTC" }

/** Runs a PostgreSQL program to completion. @internal */
export const run = (
  operation: string,
  user: ServerUser,
  file: string,
  args: ReadonlyArray<string>
): Effect.Effect<string, PgTestServerError> =>
  Effect.flatMap(commandLine(user, file, args), ([command, argv]) =>
    Effect.async<string, PgTestServerError>((resume, signal) => {
      ChildProcess.execFile(
        command,
        argv,
        { signal, env: childEnv, maxBuffer: 16 * 1024 * 1024, cwd: "/" },
        (error, stdout, stderr) => {
          if (error === null) {
            resume(Effect.succeed(stdout))
          } else {
            resume(Effect.fail(failure(
              operation,
              `${Path.basename(file)} ${args.join(" ")} failed: ${describeCause(error)}\n${stderr}`
            )))
          }
        }
      )
    })
  )

/** Changes ownership to the server user (no-op when the server runs as this process's user). @internal */
export const chownToServer = (
  user: ServerUser,
  path: string,
  options: { readonly recursive?: boolean } = {}
): Effect.Effect<void, PgTestServerError> => {
  if (user._tag === "Self") return Effect.void
  const { gid, uid } = user
  return Effect.tryPromise({
    try: async () => {
      await FsP.chown(path, uid, gid)
      if (options.recursive === true) {
        for (const entry of await FsP.readdir(path, { recursive: true })) {
          await FsP.lchown(Path.join(path, entry), uid, gid)
        }
      }
    },
    catch: (cause) => failure("chown", `cannot hand ${path} to the postgres user: ${describeCause(cause)}`)
  })
}

/** A running postmaster. @internal */
export interface Postmaster {
  readonly pid: number
  /** Completes with the exit code (or signal name) when the process has exited. */
  readonly exited: Deferred.Deferred<string>
  readonly signal: (signal: NodeJS.Signals) => void
}

/**
 * Spawns a long-running server program (`postgres`, `pgbouncer`) as the server user, its stdout
 * and stderr appended to `logFile`; the parent-death signal `deathSignal` takes it down with this
 * process. @internal
 */
export const spawnDaemon = (options: {
  readonly user: ServerUser
  readonly file: string
  readonly args: ReadonlyArray<string>
  readonly logFile: string
  readonly deathSignal: "QUIT" | "KILL"
  /** An OpenSSL configuration file for the program (`OPENSSL_CONF`). */
  readonly opensslConf?: string | undefined
}): Effect.Effect<Postmaster, PgTestServerError> =>
  Effect.gen(function*() {
    const name = Path.basename(options.file)
    const [command, argv] = yield* commandLine(options.user, options.file, options.args, options.deathSignal)
    const exited = yield* Deferred.make<string>()
    const child = yield* Effect.try({
      try: () => {
        const fd = Fs.openSync(options.logFile, "a", 0o644)
        try {
          return ChildProcess.spawn(command, argv, {
            stdio: ["ignore", fd, fd],
            env: options.opensslConf === undefined ? childEnv : { ...childEnv, OPENSSL_CONF: options.opensslConf },
            cwd: "/"
          })
        } finally {
          Fs.closeSync(fd)
        }
      },
      catch: (cause) => failure("start", `cannot spawn ${command}: ${describeCause(cause)}`)
    })
    const done = (outcome: string) => Deferred.unsafeDone(exited, Effect.succeed(outcome))
    child.once("exit", (code, signal) => done(code === null ? `signal ${signal ?? "?"}` : `exit code ${code}`))
    child.once("error", (error) => done(`spawn error: ${describeCause(error)}`))
    // The test process must be free to exit while a server runs; the parent-death signal then
    // takes the server down.
    child.unref()
    if (child.pid === undefined) {
      const outcome = yield* Deferred.await(exited)
      return yield* Effect.fail(failure("start", `${name} did not start: ${outcome}`))
    }
    const pid = child.pid
    return {
      pid,
      exited,
      signal: (signal) => {
        child.kill(signal)
      }
    }
  })

/** Spawns `postgres -D dataDir`, its stdout and stderr appended to `logFile`. @internal */
export const spawnPostmaster = (options: {
  readonly user: ServerUser
  readonly binDir: string
  readonly dataDir: string
  readonly logFile: string
  /** An OpenSSL configuration file for the server (`OPENSSL_CONF`). */
  readonly opensslConf?: string
}): Effect.Effect<Postmaster, PgTestServerError> =>
  spawnDaemon({
    user: options.user,
    file: Path.join(options.binDir, "postgres"),
    args: ["-D", options.dataDir],
    logFile: options.logFile,
    deathSignal: "QUIT",
    opensslConf: options.opensslConf
  })

/** Last lines of a log file, for error messages. @internal */
export const logTail = (logFile: string, lines = 25): Effect.Effect<string> =>
  Effect.promise(() =>
    FsP.readFile(logFile, "utf8").then(
      (text) => text.trimEnd().split("\n").slice(-lines).join("\n"),
      (cause: unknown) => `(log ${logFile} unreadable: ${describeCause(cause)})`
    )
  )
