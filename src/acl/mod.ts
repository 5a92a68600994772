/**
 * Access control: who may pass. CIDR lists (ACL-1/2), time windows (ACL-3), client credentials
 * and agent secrets with SHA-512-crypt (ACL-4…7), Basic credentials (ACL-6) and the
 * `groom password` logic (CLI-3…6).
 * A leaf: nothing here imports from the rest of `src/`.
 * @module
 */

export {
  type BasicCredentials,
  constantTimeEqual,
  type CredentialDeps,
  type CredentialMatch,
  type DescribeSecretOptions,
  describeSecretProblem,
  matchCredential,
  matchSecret,
  MAX_BASIC_AUTH_HEADER_BYTES,
  MAX_CREDENTIALS_FILE_BYTES,
  parseBasicAuth,
  readBoundedTextFile,
  type ReadTextFile,
  verifyCrypt,
} from "./credentials.ts";
export { compileNetworks, type NetworkList } from "./networks.ts";
export {
  GENERATED_SALT_BYTES,
  GENERATED_SECRET_BYTES,
  makePassword,
  MIN_SECRET_OR_SALT_BYTES,
  PASSWORD_TOO_SHORT_ERROR,
  type PasswordResult,
  type RandomSource,
  SHORT_SECRET_WARNING,
} from "./password.ts";
export {
  DEFAULT_ROUNDS,
  MAX_PASSWORD_BYTES,
  MAX_ROUNDS,
  MAX_SALT_BYTES,
  MIN_ROUNDS,
  sha512Crypt,
  type Sha512CryptOptions,
} from "./sha512_crypt.ts";
export { compileTimeRanges, type TimeRangeList } from "./time_ranges.ts";
export {
  createSessionSealer,
  credentialFingerprint,
  MAX_SESSION_TOKEN_LENGTH,
  readCookie,
  SESSION_COOKIE,
  type SessionClaims,
  sessionKey,
  type SessionSealer,
  sessionSetCookie,
  withoutCookie,
} from "./session.ts";
export {
  DEFAULT_FAILURE_LIMIT,
  DEFAULT_FAILURE_WINDOW_MS,
  FailureBudget,
  type FailureBudgetOptions,
  MAX_TRACKED_ADDRESSES,
} from "./failure_budget.ts";
