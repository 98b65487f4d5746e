/**
 * The age of a Secrets Manager secret: `DescribeSecret` (`LastChangedDate`, `LastRotatedDate`,
 * `RotationEnabled`, the AWSCURRENT VersionId), which needs `secretsmanager:DescribeSecret`
 * besides `GetSecretValue` (the requirements' IAM policy grants both).
 *
 * @internal
 */
import type { DescribeSecretCommandOutput } from "@aws-sdk/client-secrets-manager"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { SecretAccessDenied, type SecretError } from "../../SecretError.js"
import type { SecretMetadata } from "../../SecretMetadata.js"

/** @internal */
export interface AwsMetadataOptions {
  /** sends DescribeSecret for the id, bounded and classified like a GetSecretValue (an AccessDeniedException as {@link denied}) */
  readonly send: (secretId: string, key: string) => Effect.Effect<DescribeSecretCommandOutput, SecretError>
  readonly prefix: string
}

/** @internal */
export const fromOutput = (secretId: string, output: DescribeSecretCommandOutput): SecretMetadata => ({
  backend: "aws-secrets-manager",
  secret: secretId,
  changedAt: Option.fromNullable(output.LastChangedDate),
  rotatedAt: Option.fromNullable(output.LastRotatedDate),
  rotationEnabled: Option.some(output.RotationEnabled === true),
  versionId: Option.fromNullable(
    Object.entries(output.VersionIdsToStages ?? {}).find(([, stages]) => stages.includes("AWSCURRENT"))?.[0]
  )
})

/**
 * An `AccessDeniedException` of DescribeSecret names the permission metadata needs, not
 * GetSecretValue's. (Other refusals, such as expired credentials, keep their own fix.)
 *
 * @internal
 */
export const denied = (key: string, secretId: string): SecretError =>
  new SecretAccessDenied({
    backend: "aws-secrets-manager",
    key,
    message: `AWS Secrets Manager refused DescribeSecret for "${secretId}" (${key}), so its age cannot be read. ` +
      `Fix: grant secretsmanager:DescribeSecret on arn:aws:secretsmanager:<region>:<account>:secret:${secretId}*.`
  })

/** @internal */
export const make = (options: AwsMetadataOptions) => (key: string): Effect.Effect<Option.Option<SecretMetadata>, SecretError> => {
  const secretId = `${options.prefix}${key}`
  return options.send(secretId, key).pipe(
    Effect.map((output) => Option.some(fromOutput(secretId, output))),
    Effect.withSpan("SecretsBackend.awsSecretsManager.describe", { attributes: { key, secretId } })
  )
}
