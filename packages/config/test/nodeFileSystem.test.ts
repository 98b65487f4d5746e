import * as FileSystem from "@effect/platform/FileSystem"
import * as PlatformConfigProvider from "@effect/platform/PlatformConfigProvider"
import { describe, expect, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as NFS from "node:fs/promises"
import * as OS from "node:os"
import * as Path from "node:path"
import * as NodeFileSystem from "../src/internal/nodeFileSystem.js"

/** A scoped temporary directory with the given files written into it, removed afterwards. */
const tempFiles = (files: Readonly<Record<string, string>>) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = await NFS.mkdtemp(Path.join(OS.tmpdir(), "takumi-config-fs-"))
      for (const [name, content] of Object.entries(files)) await NFS.writeFile(Path.join(dir, name), content)
      return dir
    }),
    (dir) => Effect.promise(() => NFS.rm(dir, { recursive: true, force: true }))
  )

/**
 * A file the kernel refuses to read to every process, root included: the suite runs as root, for
 * whom no mode bit on a temporary file denies a read, while a write-only sysctl answers EACCES.
 */
const unreadable = "/proc/sys/vm/drop_caches"

const run = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, NodeFileSystem.layer)

describe("nodeFileSystem.layer", () => {
  it.effect("stats a regular file as a File with its size", () =>
    Effect.gen(function*() {
      const dir = yield* tempFiles({ "ca.pem": "twelve bytes" })
      const fs = yield* FileSystem.FileSystem
      const info = yield* fs.stat(`${dir}/ca.pem`)
      expect(info.type).toBe("File")
      expect(info.size).toBe(FileSystem.Size(12))
      expect(info.mtime._tag).toBe("Some")
    }).pipe(run, Effect.scoped))

  it.effect("stats a directory as a Directory", () =>
    Effect.gen(function*() {
      const dir = yield* tempFiles({})
      const fs = yield* FileSystem.FileSystem
      const info = yield* fs.stat(dir)
      expect(info.type).toBe("Directory")
    }).pipe(run, Effect.scoped))

  it.effect("fails every operation on a missing file with a NotFound SystemError naming method and path", () =>
    Effect.gen(function*() {
      const dir = yield* tempFiles({})
      const missing = `${dir}/missing.pem`
      const fs = yield* FileSystem.FileSystem
      const errors = [
        yield* Effect.flip(fs.stat(missing)),
        yield* Effect.flip(fs.access(missing, { readable: true })),
        yield* Effect.flip(fs.readFileString(missing))
      ]
      expect(errors.map((error) => error._tag === "SystemError" && error.reason)).toEqual([
        "NotFound",
        "NotFound",
        "NotFound"
      ])
      expect(errors.map((error) => error.method)).toEqual(["stat", "access", "readFile"])
      for (const error of errors) {
        expect(error.module).toBe("FileSystem")
        expect(error._tag === "SystemError" && error.pathOrDescriptor).toBe(missing)
      }
    }).pipe(run, Effect.scoped))

  it.effect("reports a file the process may not read as PermissionDenied", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      yield* fs.access(unreadable)
      const errors = [
        yield* Effect.flip(fs.access(unreadable, { readable: true })),
        yield* Effect.flip(fs.readFileString(unreadable))
      ]
      expect(errors.map((error) => error._tag === "SystemError" && error.reason)).toEqual([
        "PermissionDenied",
        "PermissionDenied"
      ])
      expect(errors.map((error) => error._tag === "SystemError" && error.pathOrDescriptor)).toEqual([
        unreadable,
        unreadable
      ])
    }).pipe(run))

  it.effect("reports reading a directory as a BadResource", () =>
    Effect.gen(function*() {
      const dir = yield* tempFiles({})
      const fs = yield* FileSystem.FileSystem
      const error = yield* Effect.flip(fs.readFileString(dir))
      expect(error._tag === "SystemError" && error.reason).toBe("BadResource")
    }).pipe(run, Effect.scoped))

  it.effect("reads a file's content as UTF-8 text", () =>
    Effect.gen(function*() {
      const content = "-----BEGIN CERTIFICATE-----\nMIIB…ü\n-----END CERTIFICATE-----\n"
      const dir = yield* tempFiles({ "ca.pem": content })
      const fs = yield* FileSystem.FileSystem
      yield* fs.access(`${dir}/ca.pem`, { readable: true })
      expect(yield* fs.readFileString(`${dir}/ca.pem`)).toBe(content)
    }).pipe(run, Effect.scoped))

  it.effect("lets PlatformConfigProvider.fromDotEnv read a .env file", () =>
    Effect.gen(function*() {
      const dir = yield* tempFiles({ ".env": "DB_HOST=db.internal\n# a comment\nDB_PORT=6543\n" })
      const provider = yield* PlatformConfigProvider.fromDotEnv(`${dir}/.env`)
      const [host, port] = yield* Effect.all([Config.string("DB_HOST"), Config.integer("DB_PORT")]).pipe(
        Effect.withConfigProvider(provider)
      )
      expect(host).toBe("db.internal")
      expect(port).toBe(6543)
    }).pipe(run, Effect.scoped))
})
