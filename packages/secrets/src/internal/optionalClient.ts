import * as Effect from "effect/Effect"
import { type BackendName, SecretsBackendUnavailable } from "../SecretError.js"

/** @internal */
export interface OptionalClient<M> {
  /** The backend that needs the package, for the error and for `SECRETS_BACKEND=<backend>` in its message. */
  readonly backend: BackendName
  /** The npm name of the optional peer dependency, e.g. `node-vault`. */
  readonly packageName: string
  /** The peer dependency range that the fix installs, e.g. `^0.12`. */
  readonly version: string
  /** `() => import("<packageName>")`, written out at the call site so bundlers and tsc see the specifier. */
  readonly importer: () => Promise<M>
}

// ESM `import()` reports a missing package as ERR_MODULE_NOT_FOUND, CommonJS `require` (inside a
// CommonJS client) as MODULE_NOT_FOUND.
const notInstalledCodes = new Set(["ERR_MODULE_NOT_FOUND", "MODULE_NOT_FOUND"])

const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

/**
 * Imports the client package of a secrets backend when that backend is built, not when
 * `@takumi/secrets` is imported: the clients are optional peer dependencies, so the env backend
 * and the package itself work without them. Only the error `code` is kept from a failed import,
 * never the error object.
 *
 * @internal
 */
export const load = <M>(client: OptionalClient<M>): Effect.Effect<M, SecretsBackendUnavailable> =>
  Effect.tryPromise({
    try: client.importer,
    catch: (error) => {
      const code = codeOf(error)
      const install = `npm install ${client.packageName}@${client.version}`
      return new SecretsBackendUnavailable({
        backend: client.backend,
        key: client.packageName,
        message: code !== undefined && notInstalledCodes.has(code)
          ? `SECRETS_BACKEND=${client.backend} needs the optional package ${client.packageName}, ` +
            `which is not installed. Fix: ${install}`
          : `SECRETS_BACKEND=${client.backend} could not load the optional package ${client.packageName} ` +
            `(${code ?? "no error code"}). Fix: check the installed version (npm ls ${client.packageName}) ` +
            `and reinstall it: ${install}`
      })
    }
  })
