/**
 * Whether the `.env` file that would be loaded is under version control: tracked by git, or in
 * a git work tree without being ignored (one `git add .` from being committed). Asked of git
 * itself, in the file's own directory, so `.gitignore`, `.git/info/exclude` and the global
 * excludes file count exactly as they do for a commit. When git is not installed, the directory
 * is not in a work tree, or git fails for any other reason, there is no finding.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"

/** @internal */
export type VersionControl = "tracked" | "not-ignored"

/** git's exit code, `None` when it could not run (not installed, killed, timed out). */
const git = (cwd: string, args: ReadonlyArray<string>): Effect.Effect<Option.Option<number>> =>
  Effect.async<Option.Option<number>>((resume, signal) => {
    // A bounded wait: a hung git (a network file system, a lock) must not hang startup.
    ChildProcess.execFile("git", [...args], { cwd, timeout: 5_000, signal, windowsHide: true }, (error) => {
      if (error === null) return resume(Effect.succeed(Option.some(0)))
      const code = "code" in error ? error.code : undefined
      resume(Effect.succeed(typeof code === "number" ? Option.some(code) : Option.none()))
    })
  })

/**
 * `git ls-files --error-unmatch` exits 0 for a tracked file, 1 for an untracked one in a work
 * tree (128 outside one); `git check-ignore -q` exits 0 for an ignored file, 1 for one that is not.
 *
 * @internal
 */
export const versionControlOf = (path: string): Effect.Effect<Option.Option<VersionControl>> => {
  const cwd = Path.dirname(Path.resolve(path))
  const file = Path.basename(path)
  return Effect.flatMap(git(cwd, ["ls-files", "--error-unmatch", "--", file]), (listed) => {
    if (Option.contains(listed, 0)) return Effect.succeed(Option.some<VersionControl>("tracked"))
    if (!Option.contains(listed, 1)) return Effect.succeed(Option.none())
    return Effect.map(git(cwd, ["check-ignore", "-q", "--", file]), (ignored) =>
      Option.contains(ignored, 1) ? Option.some<VersionControl>("not-ignored") : Option.none())
  })
}
