/**
 * The configuration of groom: the groom configuration language (syntax, macros), typed values
 * and THE settings table, plus the loaders that read a main file or a domain file from disk into
 * typed, read-only configuration objects with positioned problems. Code outside `src/config`
 * imports only this module.
 * @module
 */

import { basename } from "node:path";
import { type ConfDocument, readConfFile, type ReadConfOptions } from "./macros.ts";
import type { ConfWarning } from "./syntax.ts";
import {
  type AgentConfig,
  type AgentDomainConfig,
  type DomainDefaults,
  type Problem,
  readAgentConfig,
  readAgentDomainConfig,
  readMode,
  readServerConfig,
  readServerDomainConfig,
  type ServerConfig,
  type ServerDomainConfig,
} from "./settings.ts";

export {
  type ConfObject,
  type ConfPosition,
  type ConfScalar,
  ConfSyntaxError,
  type ConfValue,
  type ConfWarning,
  formatConf,
  hashConf,
  parseConf,
  type ParsedConf,
} from "./syntax.ts";
export {
  type CommandResult,
  type ConfDocument,
  ConfFileError,
  type ConfIo,
  DENO_CONF_IO,
  type FetchResult,
  type IoLimits,
  readConfFile,
  type ReadConfOptions,
} from "./macros.ts";
export {
  compilePattern,
  durationValue,
  formatDuration,
  formatSize,
  parseBoolean,
  parseDuration,
  type ParsedValue,
  parseInteger,
  parseSize,
  sizeValue,
} from "./values.ts";
export {
  AGENT_DOMAIN_SETTINGS,
  AGENT_SETTINGS,
  type AgentConfig,
  type AgentDomainConfig,
  type CertificateEntry,
  type ConfigOf,
  DEFAULT_DOMAIN_DEFAULTS,
  DEFAULT_DOMAINS_FOLDER,
  DEFAULT_REMOTE_PORT,
  DEFAULT_SERVICE_PATH,
  DEFAULT_SYSTEM_LOG,
  type DirectiveInfo,
  directives,
  type DomainDefaults,
  domainDefaults,
  type DomainReadOptions,
  type FileKind,
  formatProblem,
  type ListenEntry,
  MASK,
  maskCredential,
  maskSecret,
  type ParsedTree,
  parseListenAddress,
  type Problem,
  readAgentConfig,
  readAgentDomainConfig,
  readMode,
  type ReadResult,
  readServerConfig,
  readServerDomainConfig,
  renderSettings,
  ROOT_SECTION,
  SERVER_DOMAIN_SETTINGS,
  SERVER_SETTINGS,
  type ServerConfig,
  type ServerDomainConfig,
  type Setting,
  SETTINGS_BY_KIND,
  type SettingTable,
  type SettingType,
  TARGET_NAME_PLACEHOLDER,
  TARGET_SETTINGS,
  type TargetConfig,
  type WhenRead,
} from "./settings.ts";

/** How files are read: macro permissions, argv/env for macros, include roots (see macros.ts). */
export type LoadOptions = Omit<ReadConfOptions, "kind">;

/** A loaded main configuration file. */
export interface MainConfigResult {
  /**
   * `groom.mode` as written (default `agent`). Anything but `server` or `agent` leaves both
   * configurations absent; the CLI refuses it (exit 3, CLI-9).
   */
  readonly mode: string;
  /** The server configuration, when `mode` is `server`. */
  readonly server?: ServerConfig;
  /** The agent configuration, when `mode` is `agent`. */
  readonly agent?: AgentConfig;
  /** Parser warnings and setting problems, in source order. */
  readonly problems: readonly Problem[];
  /** The parsed file (tree, positions, hash, files read). */
  readonly document: ConfDocument;
}

/** A loaded domain file. */
export interface DomainConfigResult<C> {
  /** The domain's configuration; `name` is the file's base name (DOM-3). */
  readonly config: C;
  /** Parser warnings and setting problems, in source order. */
  readonly problems: readonly Problem[];
  /** The parsed file (its `hash` drives change detection, DOM-5). */
  readonly document: ConfDocument;
}

/** Options of {@link loadDomainConfig}. */
export interface DomainLoadOptions extends LoadOptions {
  /** Defaults from the main file (`body_size`, `transaction`); groom's defaults when absent. */
  readonly defaults?: DomainDefaults;
}

/** Parser warnings as problems (they concern the file, not one directive). */
function parserProblems(warnings: readonly ConfWarning[]): Problem[] {
  return warnings.map((warning) => ({
    severity: "warning" as const,
    message: warning.message,
    position: warning.position,
    key: "",
  }));
}

/**
 * Loads a main configuration file (CLI-8, CLI-9): parses it with macros, reads `mode`, then the
 * server or agent settings. Throws `ConfSyntaxError` on a syntax error and `ConfFileError` when
 * the file cannot be read (subject to `missingIsEmpty`); bad values are problems, not throws.
 */
export async function loadMainConfig(
  path: string,
  options: LoadOptions = {},
): Promise<MainConfigResult> {
  const document = await readConfFile(path, { ...options, kind: "main" });
  const mode = readMode(document.tree);
  const problems = parserProblems(document.warnings);
  if (mode === "server") {
    const { config, problems: found } = readServerConfig(document);
    return { mode, server: config, problems: [...problems, ...found], document };
  }
  if (mode === "agent") {
    const { config, problems: found } = readAgentConfig(document);
    return { mode, agent: config, problems: [...problems, ...found], document };
  }
  return { mode, problems, document };
}

/**
 * Loads a domain file (DOM-3…DOM-5) for a server or an agent. The domain name is the file's
 * base name; a missing or unreadable file reads as empty (an inactive domain) unless
 * `missingIsEmpty` is false. Throws `ConfSyntaxError` on a syntax error.
 */
export function loadDomainConfig(
  path: string,
  mode: "server",
  options?: DomainLoadOptions,
): Promise<DomainConfigResult<ServerDomainConfig>>;
/** Loads an agent domain file (DIR-6); see the server overload. */
export function loadDomainConfig(
  path: string,
  mode: "agent",
  options?: DomainLoadOptions,
): Promise<DomainConfigResult<AgentDomainConfig>>;
export async function loadDomainConfig(
  path: string,
  mode: "server" | "agent",
  options: DomainLoadOptions = {},
): Promise<DomainConfigResult<ServerDomainConfig | AgentDomainConfig>> {
  const { defaults, ...rest } = options;
  const document = await readConfFile(path, {
    ...rest,
    kind: "domain",
    missingIsEmpty: rest.missingIsEmpty ?? true,
  });
  const readOptions = defaults === undefined
    ? { name: basename(path) }
    : { name: basename(path), defaults };
  const { config, problems } = mode === "server"
    ? readServerDomainConfig(document, readOptions)
    : readAgentDomainConfig(document, readOptions);
  return { config, problems: [...parserProblems(document.warnings), ...problems], document };
}
