import type { VaultAuth } from "@takumi/config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import {
  SecretAccessDenied,
  type SecretError,
  SecretMalformed,
  SecretNotFound,
  SecretsBackendUnavailable
} from "../../SecretError.js"
import * as OptionalClient from "../optionalClient.js"
import * as SecretLimits from "../secretLimits.js"
import * as TlsAgent from "../tlsAgent.js"
import * as VaultLogin from "./login.js"
import * as VaultMetadata from "./metadata.js"
import * as VaultToken from "./token.js"
import * as VaultTransport from "./transport.js"

/** @internal */
export interface VaultBackendOptions {
  readonly address: string
  /** `VAULT_AUTH_METHOD` and its inputs: the static `VAULT_TOKEN` or a login */
  readonly auth: VaultAuth
  /** `VAULT_PATH`: KV v2 mount first, e.g. `secret/takumi/production`. */
  readonly path: string
  readonly namespace: Option.Option<string>
  /** PEM text of the CA bundle that signed the Vault server certificate (`VAULT_CACERT`). */
  readonly ca: string | undefined
  /** `VAULT_REDIRECT_HOSTS`: hosts besides `address`'s own that a redirect may lead to. */
  readonly redirectHosts: ReadonlyArray<string>
  readonly requestTimeout: Duration.DurationInput
}

const backend = "vault" as const

/** `secret/takumi/production` -> mount `secret`, secret `takumi/production` -> API path `secret/data/takumi/production`. */
const splitPath = (path: string): { readonly mount: string; readonly secret: string } | undefined => {
  const trimmed = path.replace(/^\/+|\/+$/g, "")
  const slash = trimmed.indexOf("/")
  if (slash <= 0 || slash === trimmed.length - 1) return undefined
  return { mount: trimmed.slice(0, slash), secret: trimmed.slice(slash + 1) }
}

const statusOf = (error: unknown): number | undefined => {
  const response = typeof error === "object" && error !== null && "response" in error ? error.response : undefined
  return typeof response === "object" && response !== null && "statusCode" in response &&
      typeof response.statusCode === "number"
    ? response.statusCode
    : undefined
}

const isSealed = (error: unknown): boolean => error instanceof Error && /sealed/i.test(error.message)

interface Where {
  readonly address: string
  readonly vaultPath: string
  readonly apiPath: string
  readonly timeoutMs: number
}

/**
 * Builds our error from the HTTP status or the transport `code` only. node-vault's own error
 * objects are never kept or printed (with its default axios transport they carry the token).
 */
const classify = (key: string, where: Where) => (error: unknown): SecretError => {
  const status = statusOf(error)
  const policyFix = `Fix: check the token (vault token lookup); its policy needs "read" on path "${where.apiPath}"` +
    " (and VAULT_NAMESPACE must name the token's namespace, if you use namespaces)."
  if (status === 401 || status === 403) {
    return new SecretAccessDenied({
      backend,
      key,
      message: `Vault at ${where.address} denied reading ${where.apiPath} for ${key} (HTTP ${status}). ${policyFix}`
    })
  }
  if (status === 404) {
    return new SecretNotFound({
      backend,
      key,
      message: `Vault at ${where.address} has no secret at ${where.apiPath} for ${key} (HTTP 404). ` +
        `Fix: write it (vault kv put ${where.vaultPath} ${key}=...) or correct VAULT_PATH (KV v2 mount first).`
    })
  }
  if (status === 503 && isSealed(error)) {
    return new SecretsBackendUnavailable({
      backend,
      key,
      message: `Vault at ${where.address} is sealed (HTTP 503) while reading ${key}. ` +
        "Fix: unseal it (vault operator unseal) or wait for auto-unseal; reads are retried."
    })
  }
  if (status !== undefined && (status >= 500 || status < 400 || status === 429 || status === 412)) {
    return new SecretsBackendUnavailable({
      backend,
      key,
      message: `Vault at ${where.address} could not answer for ${where.apiPath} (${key}): HTTP ${status}. ` +
        "This is usually transient and is retried on the next read; if it persists check Vault's health (vault status)."
    })
  }
  if (status !== undefined) {
    return new SecretNotFound({
      backend,
      key,
      message: `Vault at ${where.address} rejected reading ${where.apiPath} for ${key} (HTTP ${status}). ` +
        "Fix: check that VAULT_PATH names a secret on a KV v2 mount (mount first, e.g. secret/takumi/production)."
    })
  }
  if (error instanceof VaultTransport.RedirectRefused) {
    return new SecretsBackendUnavailable({
      backend,
      key,
      message: `Vault at ${where.address} redirected reading ${key} to host "${error.host}", which is neither ` +
        "VAULT_ADDR's host nor listed in VAULT_REDIRECT_HOSTS; the redirect was refused, so the token was not sent there. " +
        `Fix: if "${error.host}" is a node of this Vault cluster, add it to VAULT_REDIRECT_HOSTS (comma-separated host ` +
        "names); otherwise point VAULT_ADDR at the active node, or enable request forwarding on the standbys."
    })
  }
  // Unavailable, not malformed: nothing of the secret was read, only that whatever answered did
  // not answer like Vault (a wrong VAULT_ADDR, a proxy's page, a broken or hostile server). Like
  // a 5xx that is a problem on the way to the backend, so the cache may serve the last value it
  // read and verified for up to SECRETS_MAX_STALE, rather than letting whoever can inflate one
  // answer take the service down at once.
  if (error instanceof SecretLimits.ResponseTooLarge) {
    return new SecretsBackendUnavailable({
      backend,
      key,
      message: `Vault at ${where.address} answered reading ${where.apiPath} (${key}) with ${SecretLimits.describe(error)}. ` +
        "Fix: check that VAULT_ADDR points at Vault itself, not at a proxy, load balancer page or another service, and " +
        `that the secret at ${where.vaultPath} holds only credentials; a KV v2 answer of a few credentials is a few KiB.`
    })
  }
  const code = error instanceof VaultTransport.TransportFailure ? error.code : "unexpected client error"
  if (code === "INSECURE_REDIRECT") {
    return new SecretsBackendUnavailable({
      backend,
      key,
      message: `Vault at ${where.address} redirected reading ${key} from https to http; the redirect was refused ` +
        "so the token is not sent in clear text. Fix: give every Vault node an https api_addr, or point VAULT_ADDR at the active node."
    })
  }
  if (TlsAgent.verificationFailureCodes.has(code)) {
    return new SecretsBackendUnavailable({
      backend,
      key,
      message: `TLS verification of the Vault server at ${where.address} failed (${code}) while reading ${key}. ` +
        "Fix: set VAULT_CACERT to the CA bundle that signed the Vault server certificate and make VAULT_ADDR use " +
        "a name in that certificate. Verification is always on; VAULT_SKIP_VERIFY is ignored."
    })
  }
  return new SecretsBackendUnavailable({
    backend,
    key,
    message: `Vault at ${where.address} did not answer for ${where.apiPath} (${key}): ${
      code === "ABORT_ERR" || code === "AbortError" ? `no answer within ${where.timeoutMs} ms` : code
    }. This is usually transient and is retried on the next read; if it persists check VAULT_ADDR, the network ` +
      `path to Vault and SECRETS_REQUEST_TIMEOUT (now ${where.timeoutMs} ms).`
  })
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const extract = (key: string, where: Where, body: unknown): Effect.Effect<Redacted.Redacted<string>, SecretError> => {
  const envelope = isRecord(body) && isRecord(body.data) ? body.data : undefined
  const fields = envelope !== undefined && isRecord(envelope.data) ? envelope.data : undefined
  if (fields === undefined) {
    return Effect.fail(
      new SecretMalformed({
        backend,
        key,
        message: `Vault answered ${where.apiPath} without a KV v2 data.data object (reading ${key}). ` +
          "Fix: VAULT_PATH must be on a KV v2 mount (vault secrets enable -path=secret kv-v2); KV v1 is not supported."
      })
    )
  }
  if (!(key in fields)) {
    return Effect.fail(
      new SecretNotFound({
        backend,
        key,
        message: `Vault secret ${where.vaultPath} has no field ${key}. Fix: vault kv patch ${where.vaultPath} ${key}=...`
      })
    )
  }
  const value = fields[key]
  if (typeof value === "string" && Buffer.byteLength(value, "utf8") > SecretLimits.maxSecretValueBytes) {
    return Effect.fail(SecretLimits.valueTooLarge({
      backend,
      key,
      what: `Vault secret ${where.vaultPath} has a field ${key} that`,
      fix: `vault kv patch ${where.vaultPath} ${key}=<value>`
    }))
  }
  if (typeof value === "string" && value.length > 0) return Effect.succeed(Redacted.make(value))
  // A JSON number is read only when it is a safe integer (`5432` -> "5432"). Any other number
  // has already been rounded by JSON.parse (`12345678901234567890` arrives as
  // `12345678901234567000`) or has a fraction whose digits need not survive (`1.10` -> "1.1");
  // the reviver that could see the source text (`context.source`) exists only from Node 21.
  if (typeof value === "number" && Number.isSafeInteger(value)) return Effect.succeed(Redacted.make(String(value)))
  return Effect.fail(
    new SecretMalformed({
      backend,
      key,
      message: `Vault secret ${where.vaultPath} has a field ${key} that is ${
        typeof value === "number"
          ? "a JSON number that is not a whole number within ±(2^53 - 1), so it cannot be read exactly"
          : "not a non-empty string"
      }. Fix: store it as a non-empty string (vault kv patch ${where.vaultPath} ${key}=<value> writes a string)`
    })
  )
}

/** What `VAULT_AUTH_METHOD` asks of the token lifecycle: a lookup of the static token, or logins. */
const tokenLifecycle = (client: VaultLogin.AuthClient, auth: VaultAuth, send: VaultLogin.Send) => {
  const renew = (token: Redacted.Redacted<string>) => VaultLogin.renewSelf(client, token, send)
  const lookup = (token: Redacted.Redacted<string>) => VaultLogin.lookupSelf(client, token, send)
  if (auth.method === "token") {
    return {
      obtain: lookup(auth.token),
      login: Option.none(),
      renew,
      lookup,
      revoke: Option.none(),
      fallback: Option.some({ token: auth.token, ttlSeconds: 0, renewable: false })
    }
  }
  const login = VaultLogin.login(client, auth, send)
  return {
    obtain: login,
    login: Option.some(login),
    renew,
    lookup,
    revoke: Option.some((token: Redacted.Redacted<string>) => VaultLogin.revokeSelf(client, token, send)),
    fallback: Option.none()
  }
}

/**
 * The uncached Vault read: KV v2 `GET /v1/<mount>/data/<path>` with node-vault, taking field
 * `KEY` from `data.data`. node-vault is built so that it reads nothing from the environment:
 * endpoint, token, namespace and path prefix are set on the client after construction
 * (its constructor falls back to `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_NAMESPACE`,
 * `VAULT_PREFIX` for any falsy option), and its transport is ours (see `vault/transport`).
 * The token and namespace are sent as headers per request, unwrapped from `Redacted` there; the
 * token is `VaultToken`'s current one (`vault/token`: looked up, renewed, or logged in again).
 * node-vault is an optional peer dependency, imported here when the backend is built.
 *
 * @internal
 */
export const make = (
  options: VaultBackendOptions
): Effect.Effect<
  {
    readonly lookup: (key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>
    readonly describe: ReturnType<typeof VaultMetadata.make>
    /** `GET /v1/<apiPath>`, classified like a KV read (`key` names what was being read) */
    readonly read: (apiPath: string, key: string) => Effect.Effect<unknown, SecretError>
    readonly write: (apiPath: string, key: string, body: Readonly<Record<string, unknown>>) => Effect.Effect<unknown, SecretError>
    /** The current token (renewed, or replaced by a new login), for any other Vault call. */
    readonly token: VaultToken.VaultToken
  },
  SecretsBackendUnavailable,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const split = splitPath(options.path)
    if (split === undefined) {
      return yield* new SecretsBackendUnavailable({
        backend,
        key: "VAULT_PATH",
        message: `VAULT_PATH "${options.path}" does not name a KV v2 secret. ` +
          "Fix: give the mount first and then the secret, e.g. VAULT_PATH=secret/takumi/production."
      })
    }
    // node-vault is CommonJS (`module.exports = NodeVault`): `import()` puts it on `default`.
    const NodeVault = yield* OptionalClient.load({
      backend,
      packageName: "node-vault",
      version: "^0.12",
      importer: () => import("node-vault").then((module) => module.default)
    })
    const address = options.address.replace(/\/+$/, "")
    if (!URL.canParse(address)) {
      return yield* new SecretsBackendUnavailable({
        backend,
        key: "VAULT_ADDR",
        message: `VAULT_ADDR "${address}" is not a URL. Fix: set it to the Vault server's address, e.g. https://vault.internal:8200.`
      })
    }
    const host = new URL(address).hostname
    const transport = yield* Effect.acquireRelease(
      Effect.sync(() => VaultTransport.make({ ca: options.ca, host, redirectHosts: options.redirectHosts })),
      (transport) => Effect.sync(() => transport.close())
    )
    const client = NodeVault({
      apiVersion: "v1",
      endpoint: address,
      "request-promise": transport.requestPromise,
      debug: () => undefined
    })
    Object.assign(client, { endpoint: address, token: "", namespace: "", pathPrefix: "" })
    const where: Where = {
      address,
      vaultPath: `${split.mount}/${split.secret}`,
      apiPath: `${split.mount}/data/${split.secret}`,
      timeoutMs: Duration.toMillis(Duration.decode(options.requestTimeout))
    }
    const namespaceHeader = Option.match(options.namespace, {
      onNone: () => ({}),
      onSome: (namespace): Record<string, string> => ({ "X-Vault-Namespace": namespace })
    })
    const timeout = <A>(effect: Effect.Effect<A, SecretError>, key: string, at: Where) =>
      effect.pipe(Effect.timeoutFail({
        duration: options.requestTimeout,
        onTimeout: () => classify(key, at)(new VaultTransport.TransportFailure({ code: "AbortError" }))
      }))
    const headersOf = (token: Redacted.Redacted<string> | undefined): Record<string, string> =>
      token === undefined ? namespaceHeader : { "X-Vault-Token": Redacted.value(token), ...namespaceHeader }
    /** A token call or login: a 400/401/403 is the call's own `SecretAccessDenied`, the rest as a read. */
    const send: VaultLogin.Send = (call, run) => {
      const at = { ...where, apiPath: call.apiPath }
      return timeout(
        Effect.tryPromise({
          try: (signal) => run({ headers: headersOf(call.token), signal }),
          catch: (error) => {
            const status = statusOf(error)
            return status === 400 || status === 401 || status === 403
              ? VaultLogin.deniedError(call.key, `Vault at ${address}: ${call.denied(status)}`)
              : classify(call.key, at)(error)
          }
        }),
        call.key,
        at
      )
    }
    const token = yield* VaultToken.make(tokenLifecycle(client, options.auth, send))
    const readWith = (apiPath: string, key: string) => (current: Redacted.Redacted<string>) => {
      const at = { ...where, apiPath }
      return timeout(
        Effect.tryPromise({
          try: (signal): Promise<unknown> => client.read(apiPath, { headers: headersOf(current), signal }),
          catch: classify(key, at)
        }),
        key,
        at
      )
    }
    // A denial may mean the token was revoked out of band: then log in again and read once more.
    const read = (apiPath: string, key: string) =>
      Effect.flatMap(token.current, (current) =>
        readWith(apiPath, key)(current).pipe(
          Effect.catchIf(
            (error) => error._tag === "SecretAccessDenied",
            (denied) =>
              Effect.flatMap(
                token.revoked(current),
                (dead) => dead ? Effect.flatMap(token.current, readWith(apiPath, key)) : Effect.fail(denied)
              )
          )
        ))
    /** `POST /v1/<apiPath>` with a JSON body and the current token (the lease endpoints of dynamic credentials) */
    const write = (apiPath: string, key: string, body: Readonly<Record<string, unknown>>) =>
      Effect.flatMap(token.current, (current) => {
        const at = { ...where, apiPath }
        return timeout(
          Effect.tryPromise({
            try: (signal): Promise<unknown> => client.write(apiPath, body, { headers: headersOf(current), signal }),
            catch: classify(key, at)
          }),
          key,
          at
        )
      })
    const lookup = (key: string) =>
      read(where.apiPath, key).pipe(
        Effect.flatMap((body) => extract(key, where, body)),
        Effect.withSpan("SecretsBackend.vault.get", { attributes: { key, path: where.apiPath } })
      )
    const metadataPath = `${split.mount}/metadata/${split.secret}`
    return { lookup, read, write, describe: VaultMetadata.make({ read, vaultPath: where.vaultPath, metadataPath }), token }
  })
