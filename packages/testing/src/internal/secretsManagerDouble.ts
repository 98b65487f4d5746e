import * as Http from "./httpDouble.js"

/** @internal */
export type Fault =
  | "ResourceNotFoundException"
  | "AccessDeniedException"
  | "DecryptionFailure"
  | "ThrottlingException"
  | "InternalServiceError"
  | "hang"
  | "huge-body"
  | "huge-body-with-length"

/** @internal */
export interface RecordedRequest {
  readonly target: string
  readonly secretId: string | undefined
  readonly versionStage: string | undefined
  readonly versionId: string | undefined
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
}

interface Version {
  readonly id: string
  readonly secretString: string | undefined
  readonly secretBinary: Uint8Array | undefined
  created: number
  stages: Set<string>
}

interface Secret {
  readonly name: string
  readonly arn: string
  readonly versions: Array<Version>
  /**
   * what DescribeSecret reports of rotation: never configured (`enabled` undefined: Secrets
   * Manager then omits `RotationEnabled`) and never rotated, until a test says otherwise
   */
  rotation: { readonly enabled: boolean | undefined; readonly lastRotated: number | undefined }
}

const json11 = { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": "00000000-0000-4000-8000-000000000001" }

type AwsErrorFault = Exclude<Fault, "hang" | "huge-body" | "huge-body-with-length">

const faultAnswers: Record<AwsErrorFault, { status: number; message: string }> = {
  ResourceNotFoundException: { status: 400, message: "Secrets Manager can't find the specified secret." },
  AccessDeniedException: {
    status: 400,
    message: "User is not authorized to perform: secretsmanager:GetSecretValue because no identity-based policy allows the secretsmanager:GetSecretValue action"
  },
  DecryptionFailure: {
    status: 400,
    message: "Secrets Manager can't decrypt the protected secret text using the provided KMS key."
  },
  ThrottlingException: { status: 400, message: "Rate exceeded" },
  InternalServiceError: { status: 500, message: "An error occurred on the server side." }
}

const awsError = (type: string, status: number, message: string): Http.HttpDoubleAnswer =>
  Http.json(status, { __type: type, message }, {
    "content-type": "application/x-amz-json-1.1",
    "x-amzn-errortype": type,
    "x-amzn-requestid": "00000000-0000-4000-8000-000000000000"
  })

/**
 * The state of the Secrets Manager double: secrets with versions and staging labels, faults,
 * and every request it saw. Plain synchronous code: the HTTP handler runs on Node's callbacks.
 *
 * @internal
 */
export class SecretsManagerState {
  readonly secrets = new Map<string, Secret>()
  readonly faults = new Map<string | undefined, Fault>()
  readonly requests: Array<RecordedRequest> = []
  /** Secret ids whose DescribeSecret is denied (an IAM policy granting GetSecretValue only). */
  readonly describeDenied = new Set<string>()
  /** Body bytes the huge-body faults handed to the socket so far. */
  hugeBodyBytesSent = 0
  private nextVersion = 1

  constructor(readonly region: string, readonly now: () => number) {}

  private versionId(): string {
    const n = this.nextVersion++
    return `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`
  }

  private secret(name: string): Secret {
    const existing = this.secrets.get(name)
    if (existing !== undefined) return existing
    const created: Secret = {
      name,
      arn: `arn:aws:secretsmanager:${this.region}:000000000000:secret:${name}-AbCdEf`,
      versions: [],
      rotation: { enabled: undefined, lastRotated: undefined }
    }
    this.secrets.set(name, created)
    return created
  }

  /** Adds a version carrying `stage`; the label moves off any older version (AWSCURRENT's old holder becomes AWSPREVIOUS). */
  put(name: string, value: { readonly string?: string; readonly binary?: Uint8Array }, stage: string): string {
    const secret = this.secret(name)
    for (const version of secret.versions) {
      if (stage === "AWSCURRENT") version.stages.delete("AWSPREVIOUS")
      if (version.stages.delete(stage) && stage === "AWSCURRENT") version.stages.add("AWSPREVIOUS")
    }
    const id = this.versionId()
    secret.versions.push({
      id,
      secretString: value.string,
      secretBinary: value.binary,
      created: this.now(),
      stages: new Set([stage])
    })
    return id
  }

  /** Moves AWSCURRENT to the version labelled AWSPENDING (the last step of a rotation). */
  promotePending(name: string): boolean {
    const secret = this.secrets.get(name)
    const pending = secret?.versions.find((version) => version.stages.has("AWSPENDING"))
    if (secret === undefined || pending === undefined) return false
    for (const version of secret.versions) {
      version.stages.delete("AWSPREVIOUS")
      if (version.stages.delete("AWSCURRENT")) version.stages.add("AWSPREVIOUS")
    }
    pending.stages.delete("AWSPENDING")
    pending.stages.add("AWSCURRENT")
    return true
  }

  /** The `finishSecret` step: AWSCURRENT moves to the pending version; rotation is on and has just happened. */
  finishRotation(name: string): void {
    const secret = this.secrets.get(name)
    if (secret === undefined || !this.promotePending(name)) return
    secret.rotation = { enabled: true, lastRotated: this.now() }
  }

  /** Sets what DescribeSecret reports of rotation, and optionally backdates the AWSCURRENT version. */
  setRotation(
    name: string,
    options: { readonly enabled: boolean; readonly lastRotated?: number; readonly currentCreated?: number }
  ): boolean {
    const secret = this.secrets.get(name)
    if (secret === undefined) return false
    secret.rotation = { enabled: options.enabled, lastRotated: options.lastRotated }
    const current = secret.versions.find((version) => version.stages.has("AWSCURRENT"))
    if (current !== undefined && options.currentCreated !== undefined) current.created = options.currentCreated
    return true
  }

  /**
   * DescribeSecret as Secrets Manager answers it (dates in epoch seconds; only fields that have a
   * value): `RotationEnabled` once rotation was configured, `LastRotatedDate` only once rotated,
   * `LastChangedDate` (the last new version), and `VersionIdsToStages`.
   */
  private describe(secret: Secret): Http.HttpDoubleAnswer {
    const lastChanged = Math.max(...secret.versions.map((version) => version.created))
    const created = Math.min(...secret.versions.map((version) => version.created))
    return Http.json(200, {
      ARN: secret.arn,
      Name: secret.name,
      ...(secret.rotation.enabled === undefined ? {} : { RotationEnabled: secret.rotation.enabled }),
      ...(secret.rotation.lastRotated === undefined ? {} : { LastRotatedDate: secret.rotation.lastRotated / 1000 }),
      LastChangedDate: lastChanged / 1000,
      LastAccessedDate: Math.floor(this.now() / 86_400_000) * 86_400,
      CreatedDate: created / 1000,
      VersionIdsToStages: Object.fromEntries(secret.versions.map((version) => [version.id, [...version.stages]]))
    }, json11)
  }

  private find(secretId: string): Secret | undefined {
    return this.secrets.get(secretId) ??
      [...this.secrets.values()].find((secret) => secret.arn === secretId)
  }

  handle = (request: Http.HttpDoubleRequest): Http.HttpDoubleAnswer => {
    const target = String(request.headers["x-amz-target"] ?? "")
    let body: { SecretId?: unknown; VersionId?: unknown; VersionStage?: unknown }
    try {
      const parsed: unknown = JSON.parse(request.body.toString("utf8") || "{}")
      body = typeof parsed === "object" && parsed !== null ? parsed : {}
    } catch {
      return awsError("SerializationException", 400, "Start of structure or map found where not expected.")
    }
    const secretId = typeof body.SecretId === "string" ? body.SecretId : undefined
    const versionStage = typeof body.VersionStage === "string" ? body.VersionStage : undefined
    const versionId = typeof body.VersionId === "string" ? body.VersionId : undefined
    this.requests.push({ target, secretId, versionStage, versionId, headers: { ...request.headers } })
    if (request.method !== "POST" || request.path !== "/") {
      return awsError("UnknownOperationException", 404, "Only POST / is served by this double.")
    }
    if (target !== "secretsmanager.GetSecretValue" && target !== "secretsmanager.DescribeSecret") {
      return awsError("UnknownOperationException", 400, `Operation ${target} is not served by this double.`)
    }
    if (secretId === undefined) {
      return awsError("ValidationException", 400, "1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null")
    }
    const fault = this.faults.get(secretId) ?? this.faults.get(undefined)
    if (fault === "hang") return { _tag: "Hang" }
    if (fault === "huge-body" || fault === "huge-body-with-length") {
      // A 200 that starts like a GetSecretValue answer and never ends (1 GiB).
      return Http.hugeBody({
        status: 200,
        headers: { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": "00000000-0000-4000-8000-000000000002" },
        prefix: `{"Name":"${secretId}","SecretString":"`,
        declareLength: fault === "huge-body-with-length",
        onSent: (bytes) => void (this.hugeBodyBytesSent += bytes)
      })
    }
    if (fault !== undefined) return awsError(fault, faultAnswers[fault].status, faultAnswers[fault].message)
    const secret = this.find(secretId)
    if (secret === undefined) {
      return awsError("ResourceNotFoundException", 400, faultAnswers.ResourceNotFoundException.message)
    }
    if (target === "secretsmanager.DescribeSecret") {
      return this.describeDenied.has(secretId)
        ? awsError(
          "AccessDeniedException",
          400,
          "User is not authorized to perform: secretsmanager:DescribeSecret because no identity-based policy allows the secretsmanager:DescribeSecret action"
        )
        : this.describe(secret)
    }
    const stage = versionStage ?? (versionId === undefined ? "AWSCURRENT" : undefined)
    const version = secret.versions.find((candidate) =>
      (versionId === undefined || candidate.id === versionId) && (stage === undefined || candidate.stages.has(stage))
    )
    if (version === undefined) {
      return awsError(
        "ResourceNotFoundException",
        400,
        `Secrets Manager can't find the specified secret value for staging label: ${stage ?? versionId}`
      )
    }
    return Http.json(200, {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: version.id,
      ...(version.secretString !== undefined ? { SecretString: version.secretString } : {}),
      ...(version.secretBinary !== undefined ? { SecretBinary: Buffer.from(version.secretBinary).toString("base64") } : {}),
      VersionStages: [...version.stages],
      CreatedDate: version.created / 1000
    }, json11)
  }
}
