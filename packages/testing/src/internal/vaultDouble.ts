import * as Http from "./httpDouble.js"
import type { DatabaseEngine } from "./vaultDatabaseEngine.js"
import type { LoginConfig, TokenLifetime } from "./vaultAuthDouble.js"
import { VaultTokens } from "./vaultAuthDouble.js"

/** @internal */
export type Fault =
  | "forbidden"
  | "not-found"
  | "internal-error"
  | "sealed"
  | "throttled"
  | "hang"
  | "reset"
  | "huge-body"
  | "huge-body-with-length"

/** @internal */
export interface RecordedRequest {
  readonly method: string
  /**
   * The logical KV path, e.g. `secret/takumi/production` (mount first), when the URL names one;
   * for the auth endpoints the API path, e.g. `auth/approle/login`, `auth/token/renew-self`.
   */
  readonly path: string | undefined
  readonly url: string
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
}

interface Version {
  readonly data: Readonly<Record<string, unknown>>
  created: number
}

const errors = (status: number, messages: ReadonlyArray<string>): Http.HttpDoubleAnswer =>
  Http.json(status, { errors: messages })

const faultAnswer = (fault: Fault, onSent: (bytes: number) => void): Http.HttpDoubleAnswer => {
  switch (fault) {
    case "forbidden":
      return errors(403, ["permission denied"])
    case "not-found":
      return errors(404, [])
    case "internal-error":
      return errors(500, ["internal error"])
    case "sealed":
      return errors(503, ["Vault is sealed"])
    case "throttled":
      // What Vault answers when a rate-limit quota is exceeded.
      return errors(429, ["rate limit quota exceeded"])
    case "hang":
      return { _tag: "Hang" }
    case "reset":
      return { _tag: "Reset" }
    case "huge-body":
    case "huge-body-with-length":
      // A 200 that starts like a KV v2 answer and never ends (1 GiB).
      return Http.hugeBody({
        status: 200,
        headers: { "content-type": "application/json" },
        prefix: `{"request_id":"00000000-0000-4000-8000-000000000000","data":{"data":{"DB_PASSWORD":"`,
        declareLength: fault === "huge-body-with-length",
        onSent
      })
  }
}

/**
 * A time as Vault writes it: RFC 3339 with nanoseconds (Go's `RFC3339Nano`, e.g.
 * `2019-06-28T15:53:30.395814123Z`), not JavaScript's milliseconds. The digits past the
 * millisecond are fixed filler, so a client that parses them right reads back the exact millisecond.
 */
const vaultTime = (millis: number): string => new Date(millis).toISOString().replace(/Z$/, "814123Z")

/**
 * `/v1/<mount>/data/<path>` (or `/metadata/`) -> `<mount>/<path>`; KV v2 mounts are one segment
 * here. `/v1/auth/...` -> `auth/...`.
 */
const logicalPath = (url: URL): string | undefined => {
  const auth = /^\/v1\/(auth\/.+)$/.exec(url.pathname)
  if (auth !== null) return auth[1]
  const match = /^\/v1\/([^/]+)\/(?:data|metadata)\/(.+)$/.exec(url.pathname)
  return match === null ? undefined : `${match[1]}/${match[2]}`
}

const isMetadataPath = (url: URL): boolean => /^\/v1\/[^/]+\/metadata\//.test(url.pathname)

/**
 * The state of the Vault double: KV v2 secrets with versions, the accepted token and
 * namespace, faults, and every request it saw.
 *
 * @internal
 */
export class VaultState {
  readonly secrets = new Map<string, Array<Version>>()
  readonly faults = new Map<string | undefined, Fault>()
  readonly requests: Array<RecordedRequest> = []
  /** Paths whose metadata the token may not read (a policy granting `data/` but not `metadata/`). */
  readonly metadataDenied = new Set<string>()
  /** When set, every request is answered 307 to this address (a standby without request forwarding). */
  redirect: string | undefined = undefined
  /** Body bytes the huge-body faults handed to the socket so far. */
  hugeBodyBytesSent = 0
  /** The database secrets engine, when the double was made with one. */
  database: DatabaseEngine | undefined = undefined
  readonly tokens: VaultTokens

  constructor(
    token: string,
    readonly namespace: string | undefined,
    readonly now: () => number,
    auth: {
      readonly logins: ReadonlyArray<LoginConfig>
      readonly tokenLifetime: TokenLifetime
      readonly loginLifetime: TokenLifetime
    }
  ) {
    this.tokens = new VaultTokens(now, auth.logins, auth.loginLifetime)
    this.tokens.add(token, auth.tokenLifetime)
  }

  put(path: string, data: Readonly<Record<string, unknown>>): number {
    const versions = this.secrets.get(path) ?? []
    versions.push({ data: { ...data }, created: this.now() })
    this.secrets.set(path, versions)
    return versions.length
  }

  private metadata(version: Version, number: number) {
    return {
      created_time: vaultTime(version.created),
      custom_metadata: null,
      deletion_time: "",
      destroyed: false,
      version: number
    }
  }

  /** Sets when the current version of `path` was written (for tests of a secret's age). */
  setCurrentVersionTime(path: string, at: number): boolean {
    const current = this.secrets.get(path)?.at(-1)
    if (current === undefined) return false
    current.created = at
    return true
  }

  /**
   * `GET /v1/<mount>/metadata/<path>` as KV v2 answers it: `current_version`, `created_time` of
   * the first version, `updated_time` of the last write, and every version's metadata keyed by
   * its number.
   */
  private readMetadata(path: string): Http.HttpDoubleAnswer {
    if (this.metadataDenied.has(path)) return errors(403, ["1 error occurred:\n\t* permission denied\n\n"])
    const versions = this.secrets.get(path)
    const first = versions?.[0]
    const last = versions?.at(-1)
    if (versions === undefined || first === undefined || last === undefined) return errors(404, [])
    return Http.json(200, {
      request_id: "00000000-0000-4000-8000-000000000003",
      lease_id: "",
      renewable: false,
      lease_duration: 0,
      data: {
        cas_required: false,
        created_time: vaultTime(first.created),
        current_version: versions.length,
        custom_metadata: null,
        delete_version_after: "0s",
        max_versions: 0,
        // what Vault reports until max_versions has trimmed a version
        oldest_version: 0,
        updated_time: vaultTime(last.created),
        versions: Object.fromEntries(versions.map((version, index) => [String(index + 1), {
          created_time: vaultTime(version.created),
          deletion_time: "",
          destroyed: false
        }]))
      },
      wrap_info: null,
      warnings: null,
      auth: null
    })
  }

  handle = (request: Http.HttpDoubleRequest): Http.HttpDoubleAnswer | Promise<Http.HttpDoubleAnswer> => {
    const url = new URL(request.path, "http://127.0.0.1")
    const path = logicalPath(url)
    this.requests.push({ method: request.method, path, url: request.path, headers: { ...request.headers } })
    if (this.redirect !== undefined) {
      return { _tag: "Respond", status: 307, headers: { location: `${this.redirect}${request.path}` }, body: "" }
    }
    const fault = (path === undefined ? undefined : this.faults.get(path)) ?? this.faults.get(undefined)
    if (fault !== undefined) return faultAnswer(fault, (bytes) => void (this.hugeBodyBytesSent += bytes))
    if (this.namespace !== undefined && request.headers["x-vault-namespace"] !== this.namespace) {
      return errors(403, ["permission denied"])
    }
    if (path?.startsWith("auth/") === true) return this.tokens.handle(request, path) ?? errors(405, ["unsupported operation"])
    if (this.tokens.valid(request.headers["x-vault-token"]) === undefined) return errors(403, ["permission denied"])
    const engine = this.database?.route(request.method, url, request.body)
    if (engine !== undefined) return engine
    if (path === undefined) return errors(404, [])
    if (request.method === "GET" && isMetadataPath(url)) return this.readMetadata(path)
    if (request.method === "GET") {
      const versions = this.secrets.get(path)
      const wanted = Number(url.searchParams.get("version") ?? versions?.length ?? 0)
      const version = versions?.[wanted - 1]
      if (version === undefined) return errors(404, [])
      return Http.json(200, {
        request_id: "00000000-0000-4000-8000-000000000000",
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data: { data: version.data, metadata: this.metadata(version, wanted) },
        wrap_info: null,
        warnings: null,
        auth: null
      })
    }
    if (request.method === "POST" || request.method === "PUT") {
      let body: unknown
      try {
        body = JSON.parse(request.body.toString("utf8"))
      } catch {
        return errors(400, ["failed to parse JSON input"])
      }
      const data = typeof body === "object" && body !== null && "data" in body ? body.data : undefined
      if (typeof data !== "object" || data === null) return errors(400, ["no data provided"])
      const number = this.put(path, Object.fromEntries(Object.entries(data)))
      const versions = this.secrets.get(path) ?? []
      const version = versions[number - 1]
      return version === undefined ? errors(500, ["internal error"]) : Http.json(200, { data: this.metadata(version, number) })
    }
    return errors(405, ["unsupported operation"])
  }
}
