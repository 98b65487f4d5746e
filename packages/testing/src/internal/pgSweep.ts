/**
 * Temp folders whose owner died. A server's folder is deleted when its scope closes, but a test
 * worker that is SIGKILLed (or times out and is torn down) cannot do that: its postgres dies by the
 * parent-death signal and the folder stays. Every folder records its owner's pid; a sweep at the
 * start of a test run deletes the folders of owners that are gone.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"

/** Prefix of every temp folder the harness creates. @internal */
export const PREFIX = "takumi-pg-"

const OWNER_FILE = "owner.pid"

/** @internal */
export const isAlive = (pid: number): boolean => {
  try {
    // A zombie is dead, merely unreaped.
    const state = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.charAt(0)
    return state !== undefined && state !== "Z"
  } catch {
    return false
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

/** Deletes the harness's temp folders whose owner and postmaster are both gone; returns how many. @internal */
export const sweepStale: Effect.Effect<number> = Effect.promise(async () => {
  const tmp = Os.tmpdir()
  const entries = await FsP.readdir(tmp).catch((): Array<string> => [])
  let removed = 0
  for (const entry of entries.filter((name) => name.startsWith(PREFIX))) {
    const dir = Path.join(tmp, entry)
    const owner = await readPid(Path.join(dir, OWNER_FILE))
    if (owner === undefined || isAlive(owner)) continue
    const postmaster = await readPid(Path.join(dir, "data", "postmaster.pid"))
    if (postmaster !== undefined && isAlive(postmaster)) continue
    await FsP.rm(dir, { recursive: true, force: true }).then(() => removed++, () => undefined)
  }
  return removed
})
