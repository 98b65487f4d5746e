/**
 * The `FileSystem` that `DbConfig.layer` runs on: `stat`, `access` and `readFileString` (the one
 * `PlatformConfigProvider.fromDotEnv` calls) over `node:fs/promises`, failing with the same
 * `PlatformError`s as `@effect/platform-node`'s file system, so that `fields.ts` and `load.ts`
 * branch on the same `reason`s.
 *
 * @internal
 */
import * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as NFS from "node:fs"
import * as NFSP from "node:fs/promises"

/**
 * The errno codes of `@effect/platform-node`'s mapping, plus EPERM: for a file that config only
 * reads, "operation not permitted" (a security module, a mount option) is a permission problem
 * to the person fixing it, not an unknown one.
 */
const reasonOf = (code: string | undefined): PlatformError.SystemErrorReason => {
  switch (code) {
    case "ENOENT":
      return "NotFound"
    case "EACCES":
    case "EPERM":
      return "PermissionDenied"
    case "EEXIST":
      return "AlreadyExists"
    case "EISDIR":
    case "ENOTDIR":
    case "ELOOP":
      return "BadResource"
    case "EBUSY":
      return "Busy"
    default:
      return "Unknown"
  }
}

/** Errors from the operating system name the failed syscall; Node's argument validation does not. */
const isErrnoException = (cause: unknown): cause is NodeJS.ErrnoException =>
  cause instanceof Error && "syscall" in cause && typeof cause.syscall === "string"

const failure = (method: string, path: string) => (cause: unknown): PlatformError.PlatformError =>
  isErrnoException(cause)
    ? new PlatformError.SystemError({
      reason: reasonOf(cause.code),
      module: "FileSystem",
      method,
      pathOrDescriptor: path,
      syscall: cause.syscall,
      description: cause.message,
      cause
    })
    : new PlatformError.BadArgument({
      module: "FileSystem",
      method,
      description: cause instanceof Error ? cause.message : undefined,
      cause
    })

const fileType = (stats: NFS.Stats): FileSystem.File.Type =>
  stats.isFile()
    ? "File"
    : stats.isDirectory()
    ? "Directory"
    : stats.isSymbolicLink()
    ? "SymbolicLink"
    : stats.isBlockDevice()
    ? "BlockDevice"
    : stats.isCharacterDevice()
    ? "CharacterDevice"
    : stats.isFIFO()
    ? "FIFO"
    : stats.isSocket()
    ? "Socket"
    : "Unknown"

const fileInfo = (stats: NFS.Stats): FileSystem.File.Info => ({
  type: fileType(stats),
  mtime: Option.fromNullable(stats.mtime),
  atime: Option.fromNullable(stats.atime),
  birthtime: Option.fromNullable(stats.birthtime),
  dev: stats.dev,
  rdev: Option.fromNullable(stats.rdev),
  ino: Option.fromNullable(stats.ino),
  mode: stats.mode,
  nlink: Option.fromNullable(stats.nlink),
  uid: Option.fromNullable(stats.uid),
  gid: Option.fromNullable(stats.gid),
  size: FileSystem.Size(stats.size),
  blksize: Option.map(Option.fromNullable(stats.blksize), FileSystem.Size),
  blocks: Option.fromNullable(stats.blocks)
})

const stat = (path: string): Effect.Effect<FileSystem.File.Info, PlatformError.PlatformError> =>
  Effect.tryPromise({ try: () => NFSP.stat(path), catch: failure("stat", path) }).pipe(Effect.map(fileInfo))

const access = (path: string, options?: FileSystem.AccessFileOptions): Effect.Effect<void, PlatformError.PlatformError> =>
  Effect.tryPromise({
    try: () =>
      NFSP.access(
        path,
        NFS.constants.F_OK | (options?.readable ? NFS.constants.R_OK : 0) | (options?.writable ? NFS.constants.W_OK : 0)
      ),
    catch: failure("access", path)
  })

/** Reported as `readFile`, the operation that failed, exactly as `@effect/platform-node` does. */
const readFileString = (path: string, encoding?: string): Effect.Effect<string, PlatformError.PlatformError> =>
  Effect.tryPromise({ try: (signal) => NFSP.readFile(path, { signal }), catch: failure("readFile", path) }).pipe(
    Effect.flatMap((bytes) =>
      Effect.try({
        try: () => new TextDecoder(encoding).decode(bytes),
        catch: (cause) =>
          new PlatformError.BadArgument({
            module: "FileSystem",
            method: "readFileString",
            description: "invalid encoding",
            cause
          })
      })
    )
  )

/**
 * `FileSystem` for `DbConfig.layer` and `DbConfig.layerFromEnvironment`.
 *
 * @internal
 */
export const layer: Layer.Layer<FileSystem.FileSystem> =
  // a node:fs-backed FileSystem of the few operations config needs, instead of @effect/platform-node
  // and its cluster/rpc/workflow peers: every other operation fails NotFound or dies, never called here
  FileSystem.layerNoop({ access, readFileString, stat })
