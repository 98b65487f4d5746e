/**
 * "NEVER commit .env files to version control", against real temporary git repositories: a
 * tracked or unignored `.env` is warned about in development and test and refused in staging
 * and production (`dotenv-version-control`); an ignored one, or one outside any work tree, is not
 * a finding.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { decode, devBase, type LogLine, prodBase, withLogs } from "./fixtures.js"

/** A scoped temporary directory holding `.env` (no credential in it), a git work tree unless `git` is false. */
const checkout = (options: { readonly git: boolean; readonly state?: "tracked" | "ignored" | "untracked" }) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "takumi-dotenv-git-"))
      const run = (...args: Array<string>) =>
        ChildProcess.execFileSync("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", ...args], { cwd: dir })
      Fs.writeFileSync(Path.join(dir, ".env"), "DB_APPLICATION_NAME=from-dotenv\n")
      if (options.git) {
        run("init", "-q")
        if (options.state === "ignored") Fs.writeFileSync(Path.join(dir, ".gitignore"), ".env\n")
        if (options.state === "tracked") {
          run("add", ".env")
          run("commit", "-q", "-m", "oops")
        }
      }
      return dir
    }),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )

const findingsOf = (logs: ReadonlyArray<LogLine>) =>
  logs.filter((line) => line.annotations["rule"] === "dotenv-version-control")

describe("DbConfig .env under version control", () => {
  it.scoped("warns in development about a tracked .env, with git rm --cached and .gitignore as the fix", () =>
    Effect.gen(function*() {
      const dir = yield* checkout({ git: true, state: "tracked" })
      const { exit, logs } = yield* withLogs(decode(devBase, { dotEnv: `${dir}/.env` }))
      expect(Exit.isSuccess(exit)).toBe(true)
      const found = findingsOf(logs)
      expect(found).toHaveLength(1)
      expect(found[0]?.message).toContain("tracked by git")
      expect(found[0]?.message).toContain("git rm --cached .env")
      expect(found[0]?.message).toContain("add .env to .gitignore")
    }))

  it.scoped("warns in test about a .env in a work tree that is not ignored", () =>
    Effect.gen(function*() {
      const dir = yield* checkout({ git: true, state: "untracked" })
      const { exit, logs } = yield* withLogs(decode({ ...devBase, NODE_ENV: "test" }, { dotEnv: `${dir}/.env` }))
      expect(Exit.isSuccess(exit)).toBe(true)
      const found = findingsOf(logs)
      expect(found).toHaveLength(1)
      expect(found[0]?.message).toContain("not ignored")
      expect(found[0]?.message).not.toContain("git rm --cached")
    }))

  it.scoped("says nothing of an ignored .env, or of one outside any git work tree", () =>
    Effect.gen(function*() {
      const ignored = yield* checkout({ git: true, state: "ignored" })
      const outside = yield* checkout({ git: false })
      for (const dir of [ignored, outside]) {
        const { exit, logs } = yield* withLogs(decode(devBase, { dotEnv: `${dir}/.env` }))
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(findingsOf(logs)).toEqual([])
      }
    }))

  it.scoped("refuses a tracked .env in production and staging (InsecureConfiguration dotenv-version-control)", () =>
    Effect.gen(function*() {
      const dir = yield* checkout({ git: true, state: "tracked" })
      for (const environment of ["production", "staging"]) {
        const error = yield* Effect.flip(decode({ ...prodBase, NODE_ENV: environment }, { dotEnv: `${dir}/.env` }))
        expect(error).toMatchObject({ _tag: "InsecureConfiguration", rule: "dotenv-version-control" })
        expect(error.message).toContain(`${environment} refuses to start`)
        expect(error.message).toContain("git rm --cached .env")
      }
    }))

  it.scoped("starts in production with an ignored .env (not loaded, no version-control finding)", () =>
    Effect.gen(function*() {
      const dir = yield* checkout({ git: true, state: "ignored" })
      const { exit, logs } = yield* withLogs(decode(prodBase, { dotEnv: `${dir}/.env` }))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(findingsOf(logs)).toEqual([])
    }))
})
