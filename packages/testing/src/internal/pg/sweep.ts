/**
 * Temp folders whose owner died. A server's folder is deleted when its scope closes, but a test
 * worker that is SIGKILLed (or times out and is torn down) cannot do that. With `setpriv` its
 * postgres dies by the parent-death signal and only the folder stays; without `setpriv` (not
 * root and no util-linux, e.g. macOS) the postmaster keeps running. Every folder records its
 * owner's pid; a sweep at the start of a test run stops the postmaster of an owner that is gone
 * (SIGQUIT, PostgreSQL's immediate shutdown) and deletes the folder.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"

/** Prefix of every temp folder the harness creates. @internal */
export const PREFIX = "takumi-pg-"

const OWNER_FILE = "owner.pid"

const hasProc = Fs.existsSync("/proc/self/stat")

/** @internal */
export const isAlive = (pid: number): boolean => {
  if (hasProc) {
    try {
      // A zombie is dead, merely unreaped.
      const state = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.charAt(0)
      return state !== undefined && state !== "Z"
    } catch {
      return false
    }
  }
  // No /proc (macOS): signal 0 checks existence; EPERM means it exists under another user.
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error instanceof Error && "code" in error && error.code === "EPERM"
  }
}

/** The command line of `pid`, or undefined when it cannot be read. */
const commandOf = (pid: number): string | undefined => {
  try {
    return hasProc
      ? Fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ")
      : ChildProcess.execFileSync("ps", ["-o", "command=", "-p", String(pid)], { encoding: "utf8" })
  } catch {
    return undefined
  }
}

/** Records this process as the owner of `dir`. @internal */
export const writeOwner = (dir: string): Promise<void> =>
  FsP.writeFile(Path.join(dir, OWNER_FILE), `${process.pid}\n`, { mode: 0o644 })

const readPid = (file: string): Promise<number | undefined> =>
  FsP.readFile(file, "utf8").then(
    (text) => {
      const pid = Number.parseInt(text.split("\n")[0] ?? "", 10)
      return Number.isInteger(pid) && pid > 0 ? pid : undefined
    },
    () => undefined
  )

const STOP_TIMEOUT = "10 seconds"

/**
 * Stops the postmaster serving `dir`'s data folder, if one still runs: SIGQUIT, then waits (on
 * the wall clock) until it has exited. A pid from postmaster.pid that now belongs to another
 * program (reused after the postmaster died) is left alone. True when no postmaster of `dir`
 * is left running.
 */
const stopPostmaster = (dir: string): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const pid = yield* Effect.promise(() => readPid(Path.join(dir, "data", "postmaster.pid")))
    if (pid === undefined || !isAlive(pid)) return true
    const command = commandOf(pid)
    if (command === undefined || !command.includes(dir)) return true
    const signalled = yield* Effect.sync(() => {
      try {
        process.kill(pid, "SIGQUIT")
        return true
      } catch {
        return false
      }
    })
    if (!signalled) {
      yield* Effect.logWarning(`PgTestServer sweep: cannot signal postmaster ${pid} of ${dir}; leaving the folder`)
      return false
    }
    const stopped = yield* Effect.sync(() => !isAlive(pid)).pipe(
      Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (gone) => gone }),
      Effect.timeoutTo({ duration: STOP_TIMEOUT, onTimeout: () => false, onSuccess: () => true }),
      Effect.withClock(Clock.make())
    )
    if (stopped) {
      yield* Effect.logInfo(`PgTestServer sweep: stopped postmaster ${pid} of ${dir}, whose owner is gone`)
    } else {
      yield* Effect.logWarning(
        `PgTestServer sweep: postmaster ${pid} of ${dir} did not exit within ${STOP_TIMEOUT} of SIGQUIT; leaving the folder`
      )
    }
    return stopped
  })

/**
 * Deletes the harness's temp folders whose owner is gone, first stopping a postmaster still
 * running in one; returns how many folders were removed.
 *
 * @internal
 */
export const sweepStale: Effect.Effect<number> = Effect.gen(function*() {
  const tmp = Os.tmpdir()
  const entries = yield* Effect.promise(() => FsP.readdir(tmp).catch((): Array<string> => []))
  let removed = 0
  for (const entry of entries.filter((name) => name.startsWith(PREFIX))) {
    const dir = Path.join(tmp, entry)
    const owner = yield* Effect.promise(() => readPid(Path.join(dir, OWNER_FILE)))
    if (owner === undefined || isAlive(owner)) continue
    if (!(yield* stopPostmaster(dir))) continue
    const deleted = yield* Effect.promise(() => FsP.rm(dir, { recursive: true, force: true }).then(() => true, () => false))
    if (deleted) removed++
  }
  return removed
})
