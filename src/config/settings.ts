/**
 * THE settings table of groom (house rule 2): every directive of the four file kinds (server
 * main, server domain, agent main, agent domain) is declared once here with its configuration
 * key (byte-identical to groom 1.3), camelCase field, type, default, bounds, when it is read and
 * a one-line doc; the typed, read-only configuration objects are derived from these tables, so
 * use sites read fields, never string paths. Reading never throws on bad values: it keeps groom
 * 1.3's results (defaults, clamping, dropped entries) and accumulates positioned problems
 * (errors and warnings) for logs and `groom check`, including unknown directives. Pure: the
 * loaders that touch files are in `mod.ts`.
 * @module
 */

import { compileNetworks, compileTimeRanges, describeSecretProblem } from "../acl/mod.ts";
import type { ConfPosition, ConfValue } from "./syntax.ts";
import { joinPath, listChildren, lookupString, lookupValue, splitPath } from "./tree.ts";
import {
  compilePattern,
  durationValue,
  formatDuration,
  formatSize,
  parseBoolean,
  parseDuration,
  parseInteger,
  parseSize,
  sizeValue,
} from "./values.ts";

/** The section every directive lives in (`groom { … }`). */
export const ROOT_SECTION = "groom";
/** Default path of the agent endpoint on the server (DIR-1, DIR-6). */
export const DEFAULT_SERVICE_PATH = "/.well-known/groom-agent";
/** Default folder of domain files (DIR-1, DIR-5). */
export const DEFAULT_DOMAINS_FOLDER = "/etc/groom/domains";
/** Default system log target (DIR-1, LOG-1). */
export const DEFAULT_SYSTEM_LOG = "console(output=stdout)";
/** Port the agent dials when a domain file has no `remote` (DIR-6). */
export const DEFAULT_REMOTE_PORT = 443;
/** How secrets are shown by {@link renderSettings}. */
export const MASK = "****";

/** When a changed value takes effect (section 3 of the spec). */
export type WhenRead =
  /** only at process start */
  | "start"
  /** at start and on each SIGHUP reload */
  | "sighup"
  /** each time it is used, so a reload changes it */
  | "request"
  /** at each scan of the domain folder */
  | "scan"
  /** when the domain file is (re)parsed with a changed hash (DOM-5) */
  | "domain";

/** Value types of directives (CFG-16…CFG-20, TLS-1, AGT-5). */
export type SettingType =
  | "string"
  | "boolean"
  | "integer"
  | "size"
  | "duration"
  | "list"
  | "listen"
  | "targets";

/** The four kinds of configuration file. */
export type FileKind = "server" | "agent" | "server-domain" | "agent-domain";

/** One thing wrong or surprising in a configuration file. */
export interface Problem {
  /**
   * `error`: part of the file is ignored or invalid as written (a dropped listen entry or target,
   * a `service` that is not a path); the rest still loads, as in groom 1.3. `warning`: accepted
   * with a surprising reading (default used, value clamped, unknown directive).
   */
  readonly severity: "error" | "warning";
  /** What is wrong, std style, without the key (see {@link formatProblem}). */
  readonly message: string;
  /** Where in the source, when the parser recorded it. */
  readonly position?: ConfPosition;
  /** Full dotted path concerned (`groom.listen.0`), or "" for the whole file. */
  readonly key: string;
}

/** Domain defaults that come from the main file (DIR-4: `body_size`, `transaction`). */
export interface DomainDefaults {
  /** Server `body_size` in bytes. */
  readonly bodySize: number;
  /** Server `transaction`. */
  readonly transaction: boolean;
}

/** What a setting reader sees: the tree, where things are, the domain, and a problem sink. */
export interface ReadContext {
  /** The whole parsed file. */
  readonly tree: ConfValue;
  /** Source positions by dotted path, when known. */
  readonly positions: ReadonlyMap<string, ConfPosition>;
  /** Domain name (the domain file's base name), "" for main files. */
  readonly domain: string;
  /** Defaults inherited from the main file. */
  readonly defaults: DomainDefaults;
  /** Records a problem at `key` (positioned from {@link ReadContext.positions}). */
  readonly report: (severity: Problem["severity"], key: string, message: string) => void;
}

/** A declared directive producing a value of type `T`. */
export interface Setting<T> {
  /** Configuration key under its section, byte-identical to groom 1.3 (`log.system`). */
  readonly key: string;
  /** Value type. */
  readonly type: SettingType;
  /** The default as it would be written in a configuration file (`64kB`, `"groom"`). */
  readonly defaultText: string;
  /** Lower bound as written (`5s`), for bounded types. */
  readonly min?: string;
  /** Upper bound as written (`60s`), for bounded types. */
  readonly max?: string;
  /** When a changed value takes effect. */
  readonly when: WhenRead;
  /** One-line documentation; additions of ours start with "(new)". */
  readonly doc: string;
  /** True for directives groom 1.3 does not know. */
  readonly isNew: boolean;
  /** True when the value must be masked in output. */
  readonly secret: boolean;
  /** Reads the value at `path` (the full dotted path of the directive). */
  readonly read: (context: ReadContext, path: string) => T;
  /** Renders `key = value` lines for `groom check`, secrets masked. */
  readonly render: (value: T, path: string) => string[];
}

/** Any table of settings, keyed by camelCase field. */
// deno-lint-ignore no-explicit-any
export type SettingTable = { readonly [field: string]: Setting<any> };

/** The typed, read-only configuration object a table produces. */
export type ConfigOf<T extends SettingTable> = {
  readonly [F in keyof T]: T[F] extends Setting<infer V> ? V : never;
};

/** Options shared by every setting constructor. */
interface CommonOptions {
  readonly when: WhenRead;
  readonly doc: string;
  readonly isNew?: boolean;
  readonly secret?: boolean;
}

/** A value that is either fixed or derived from the read context (domain defaults). */
type Default<T> = T | ((context: ReadContext) => T);

function resolveDefault<T>(value: Default<T>, context: ReadContext): T {
  return typeof value === "function" ? (value as (context: ReadContext) => T)(context) : value;
}

/** Shows a configuration value in a message. */
function show(value: ConfValue): string {
  return JSON.stringify(value);
}

/**
 * The string at `path`, or `undefined` when absent (CFG-14). A present value that is not a
 * string (a section, a list, or a JSON number from plain-JSON files) is ignored by groom 1.3;
 * that is reported.
 */
function readScalar(context: ReadContext, path: string): string | undefined {
  const value = lookupValue(context.tree, path);
  if (value === undefined || typeof value === "string") return value;
  const found = Array.isArray(value)
    ? "a list"
    : typeof value === "object" && value !== null
    ? "a section"
    : `the non-string value ${show(value)}`;
  context.report("warning", path, `Expected a single value, found ${found}: using the default`);
  return undefined;
}

/** The strings of a list directive (CFG-15), trimmed, empty ones dropped (DIR-4). */
function readList(context: ReadContext, path: string): string[] {
  const lookup = listChildren(context.tree, path);
  if (lookup.warning !== undefined) context.report("warning", path, lookup.warning);
  const values: string[] = [];
  for (const itemPath of lookup.paths) {
    const item = lookupString(context.tree, itemPath);
    if (item === undefined) {
      context.report("warning", itemPath, "List item is not a string: ignored");
      continue;
    }
    if (item.trim() !== "") values.push(item.trim());
  }
  return values;
}

/** `key = value` with the key relative to the root section. */
function line(path: string, value: string): string {
  const prefix = `${ROOT_SECTION}.`;
  return `${path.startsWith(prefix) ? path.slice(prefix.length) : path} = ${value}`;
}

/** Masks a secret: `@file` references stay readable, the empty secret stays visibly empty. */
export function maskSecret(value: string): string {
  if (value === "" || value.startsWith("@")) return value;
  return MASK;
}

/** Masks the password of a `login:password` credential; `@file` references stay readable. */
export function maskCredential(entry: string): string {
  if (entry.startsWith("@")) return entry;
  const colon = entry.indexOf(":");
  return colon < 0 ? MASK : `${entry.slice(0, colon)}:${MASK}`;
}

function renderList(values: readonly string[], mask?: (value: string) => string): string {
  if (values.length === 0) return "[ ]";
  return `[ ${values.map((value) => show(mask ? mask(value) : value)).join(", ")} ]`;
}

/** Options of a string directive. */
interface StringOptions extends CommonOptions {
  readonly default: Default<string>;
  /** Shown default when `default` is computed. */
  readonly defaultText?: string;
  /** `trim`: groom trims the value; `lower`: trims and lower-cases it. */
  readonly transform?: "none" | "trim" | "lower";
  /** Extra validation of the value in effect. */
  readonly check?: (value: string, context: ReadContext, path: string) => void;
}

/** Declares a string directive (CFG-16). */
function stringSetting(key: string, options: StringOptions): Setting<string> {
  const secret = options.secret ?? false;
  return Object.freeze<Setting<string>>({
    key,
    type: "string",
    defaultText: options.defaultText ?? show(options.default as string),
    when: options.when,
    doc: options.doc,
    isNew: options.isNew ?? false,
    secret,
    read(context, path) {
      const raw = readScalar(context, path);
      let value = raw ?? resolveDefault(options.default, context);
      if (raw !== undefined && options.transform !== undefined && options.transform !== "none") {
        value = value.trim();
        if (options.transform === "lower") value = value.toLowerCase();
      }
      options.check?.(value, context, path);
      return value;
    },
    render: (value, path) => [line(path, show(secret ? maskSecret(value) : value))],
  });
}

/** Options of a boolean directive. */
interface BooleanOptions extends CommonOptions {
  readonly default: Default<boolean>;
  readonly defaultText?: string;
}

/** Declares a boolean directive (CFG-17). */
function booleanSetting(key: string, options: BooleanOptions): Setting<boolean> {
  return Object.freeze<Setting<boolean>>({
    key,
    type: "boolean",
    defaultText: options.defaultText ?? String(options.default),
    when: options.when,
    doc: options.doc,
    isNew: options.isNew ?? false,
    secret: false,
    read(context, path) {
      const fallback = resolveDefault(options.default, context);
      const raw = readScalar(context, path);
      if (raw === undefined) return fallback;
      const parsed = parseBoolean(raw, fallback);
      if (parsed.warning !== undefined) context.report("warning", path, parsed.warning);
      return parsed.value;
    },
    render: (value, path) => [line(path, String(value))],
  });
}

/** Options of an integer directive. */
interface IntegerOptions extends CommonOptions {
  readonly default: number;
  readonly min: number;
  readonly max: number;
  readonly check?: (value: number, context: ReadContext, path: string) => void;
}

/** Declares a bounded integer directive (CFG-18). */
function integerSetting(key: string, options: IntegerOptions): Setting<number> {
  return Object.freeze<Setting<number>>({
    key,
    type: "integer",
    defaultText: String(options.default),
    min: String(options.min),
    max: String(options.max),
    when: options.when,
    doc: options.doc,
    isNew: options.isNew ?? false,
    secret: false,
    read(context, path) {
      const raw = readScalar(context, path);
      if (raw === undefined) return options.default;
      const parsed = parseInteger(raw, options);
      if (parsed.warning !== undefined) context.report("warning", path, parsed.warning);
      options.check?.(parsed.value, context, path);
      return parsed.value;
    },
    render: (value, path) => [line(path, String(value))],
  });
}

/** Options of a size directive; sizes are written as in configuration files. */
interface SizeOptions extends CommonOptions {
  readonly default: Default<string | number>;
  readonly defaultText?: string;
  readonly min: string;
  readonly max: string;
}

/** Bytes of a size written in this table (a programming error if it does not parse). */
function bytesOf(text: string | number): number {
  const bytes = typeof text === "number" ? text : sizeValue(text);
  if (bytes === undefined) throw new TypeError(`Cannot parse size "${text}" in the settings table`);
  return bytes;
}

/** Declares a bounded size directive in bytes (CFG-19). */
function sizeSetting(key: string, options: SizeOptions): Setting<number> {
  const min = bytesOf(options.min);
  const max = bytesOf(options.max);
  return Object.freeze<Setting<number>>({
    key,
    type: "size",
    defaultText: options.defaultText ?? String(options.default),
    min: options.min,
    max: options.max,
    when: options.when,
    doc: options.doc,
    isNew: options.isNew ?? false,
    secret: false,
    read(context, path) {
      const fallback = bytesOf(resolveDefault(options.default, context));
      const raw = readScalar(context, path);
      if (raw === undefined) return fallback;
      const parsed = parseSize(raw, { default: fallback, min, max });
      if (parsed.warning !== undefined) context.report("warning", path, parsed.warning);
      return parsed.value;
    },
    render: (value, path) => [line(path, formatSize(value))],
  });
}

/** Options of a duration directive; durations are written as in configuration files. */
interface DurationOptions extends CommonOptions {
  readonly default: string;
  readonly min: string;
  readonly max: string;
}

/** Declares a bounded duration directive; the value is in milliseconds (CFG-20). */
function durationSetting(key: string, options: DurationOptions): Setting<number> {
  const fallback = durationValue(options.default) * 1000;
  const bounds = { min: durationValue(options.min), max: durationValue(options.max) };
  return Object.freeze<Setting<number>>({
    key,
    type: "duration",
    defaultText: options.default,
    min: options.min,
    max: options.max,
    when: options.when,
    doc: options.doc,
    isNew: options.isNew ?? false,
    secret: false,
    read(context, path) {
      const raw = readScalar(context, path);
      if (raw === undefined) return fallback;
      const parsed = parseDuration(raw, bounds);
      if (parsed.warning !== undefined) context.report("warning", path, parsed.warning);
      return parsed.value * 1000;
    },
    render: (value, path) => [line(path, formatDuration(value / 1000))],
  });
}

/** Options of a list directive. */
interface ListOptions extends CommonOptions {
  /** Extra validation of each item in effect. */
  readonly checkItem?: (value: string, context: ReadContext, path: string) => void;
  /** Masks one item for output. */
  readonly mask?: (value: string) => string;
}

/** Declares a list of strings, trimmed, empty items dropped (CFG-15, DIR-4). */
function listSetting(key: string, options: ListOptions): Setting<readonly string[]> {
  return Object.freeze<Setting<readonly string[]>>({
    key,
    type: "list",
    defaultText: "[ ]",
    when: options.when,
    doc: options.doc,
    isNew: options.isNew ?? false,
    secret: options.secret ?? false,
    read(context, path) {
      const values = readList(context, path);
      if (options.checkItem) {
        const lookup = listChildren(context.tree, path);
        const paths = lookup.paths.filter((itemPath) =>
          (lookupString(context.tree, itemPath) ?? "").trim() !== ""
        );
        values.forEach((value, index) => options.checkItem?.(value, context, paths[index] ?? path));
      }
      return Object.freeze(values);
    },
    render: (value, path) => [line(path, renderList(value, options.mask))],
  });
}

// ---------------------------------------------------------------------------------------------
// Validation helpers shared by several directives.

/**
 * Reports network entries groom cannot use (ACL-1), with the access-control module's own parser so
 * validation and matching agree: an invalid entry is an error (it is ignored), a bare address a
 * warning (taken as a single host, where groom 1.3 ignored it).
 */
function checkNetwork(value: string, context: ReadContext, path: string): void {
  const compiled = compileNetworks([value]);
  for (const problem of compiled.problems) {
    context.report(compiled.size === 0 ? "error" : "warning", path, problem);
  }
}

/** A time range that does not parse is an error, never silently ignored (issue #4, ACL-3). */
function checkRange(value: string, context: ReadContext, path: string): void {
  for (const problem of compileTimeRanges([value]).problems) {
    context.report("error", path, problem);
  }
}

/** `service` must be an absolute URL path (ODD-39). */
function checkService(value: string, context: ReadContext, path: string): void {
  if (!value.startsWith("/")) {
    context.report("error", path, `Service path "${value}" must start with "/"`);
  }
}

/** A credential that can never match (no `login:`, unsupported hash scheme) is an error (ODD-19). */
function checkCredential(value: string, context: ReadContext, path: string): void {
  const problem = describeSecretProblem(value, { kind: "credential" });
  if (problem !== undefined) context.report("error", path, problem);
}

/** An agent secret stored with an unsupported hash scheme never matches. */
function checkSecret(value: string, context: ReadContext, path: string): void {
  if (value === "") return;
  const problem = describeSecretProblem(value);
  if (problem !== undefined) context.report("error", path, problem);
}

// ---------------------------------------------------------------------------------------------
// Listen entries and certificate lists (TLS-1, TLS-2, TLS-5).

/** One certificate of a listener: used when `pattern` matches the SNI name, `*` = fallback. */
export interface CertificateEntry {
  /** Regular expression on the TLS server name (unanchored), or `*` for the fallback (TLS-6). */
  readonly pattern: string;
  /** Certificate (chain) PEM file, as written (relative paths are relative to the cwd). */
  readonly cert: string;
  /** Private key PEM file, as written. */
  readonly key: string;
}

/** One HTTPS listener (TLS-1). */
export interface ListenEntry {
  /** The entry as written. */
  readonly raw: string;
  /** ADDRESS as written, leading `*` included (the `listen` field of the listen event, TLS-2). */
  readonly address: string;
  /** Host to bind; "" means every interface (`*:443`, `:443`). IPv6 without brackets. */
  readonly hostname: string;
  /** TCP port (0 = any free port). */
  readonly port: number;
  /** The pieces after ADDRESS joined by "," (the `certificates` field of the listen event). */
  readonly certificatesText: string;
  /** The configuration path of the certificate list, for the `ADDRESS,CONFIG.PATH` form. */
  readonly certificatesPath?: string;
  /** Certificates in order; the `ADDRESS,CERT,KEY` form gives one `*` entry. */
  readonly certificates: readonly CertificateEntry[];
}

/** Highest TCP port. */
const MAX_PORT = 65535;

/**
 * Parses a listen ADDRESS in Go's dialect (TLS-2): leading `*` characters are removed, then
 * `host:port`, `[ipv6]:port` or `:port`. Throws `SyntaxError` when it is none of those.
 */
export function parseListenAddress(address: string): { hostname: string; port: number } {
  const stripped = address.replace(/^\*+/, "");
  let hostname: string;
  let port: string;
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(stripped);
  if (bracketed) {
    hostname = bracketed[1] ?? "";
    port = bracketed[2] ?? "";
  } else {
    const colon = stripped.lastIndexOf(":");
    if (colon < 0) throw new SyntaxError(`Cannot parse listen address "${address}": missing port`);
    hostname = stripped.slice(0, colon);
    port = stripped.slice(colon + 1);
    if (hostname.includes(":") || hostname.includes("[") || hostname.includes("]")) {
      throw new SyntaxError(
        `Cannot parse listen address "${address}": write IPv6 addresses as [addr]:port`,
      );
    }
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) > MAX_PORT) {
    throw new SyntaxError(`Cannot parse listen address "${address}": invalid port "${port}"`);
  }
  return { hostname, port: Number(port) };
}

/** Three tokens `PATTERN CERT KEY` of a certificate entry (TLS-5); RE2 `\s` is `[\t\n\f\r ]`. */
const CERTIFICATE_REGEXP =
  /^([^\t\n\f\r ]+)[\t\n\f\r ]+([^\t\n\f\r ]+)[\t\n\f\r ]+([^\t\n\f\r ]+)$/;

/** Reads the certificate list at `listPath` (TLS-5). */
function readCertificates(
  context: ReadContext,
  listPath: string,
  entryPath: string,
): CertificateEntry[] {
  const lookup = listChildren(context.tree, listPath);
  if (lookup.warning !== undefined) context.report("warning", listPath, lookup.warning);
  const certificates: CertificateEntry[] = [];
  for (const itemPath of lookup.paths) {
    const text = (lookupString(context.tree, itemPath) ?? "").trim();
    const match = CERTIFICATE_REGEXP.exec(text);
    if (!match) {
      context.report(
        "warning",
        itemPath,
        `Certificate entry ${show(text)} is not "PATTERN CERT KEY": ignored`,
      );
      continue;
    }
    const [, pattern = "", cert = "", key = ""] = match;
    if (pattern !== "*") {
      try {
        compilePattern(pattern);
      } catch (error) {
        context.report("warning", itemPath, `${(error as Error).message}: it never matches`);
      }
    }
    certificates.push(Object.freeze({ pattern, cert, key }));
  }
  if (certificates.length === 0) {
    const hint = lookupValue(context.tree, listPath) === undefined && /[/\\]/.test(listPath)
      ? ` ("${listPath}" looks like a file: write ADDRESS,CERT,KEY)`
      : "";
    context.report(
      "error",
      entryPath,
      `Certificate list "${listPath}" holds no certificate entry: every TLS handshake fails${hint}`,
    );
  }
  return certificates;
}

/** Reads one listen entry, or reports why it is dropped (TLS-1). */
function readListenEntry(
  context: ReadContext,
  raw: string,
  path: string,
): ListenEntry | undefined {
  const pieces = raw.split(",").map((piece) => piece.trim());
  const [address = "", second = "", third] = pieces;
  if (pieces.length < 2) {
    context.report(
      "error",
      path,
      `Listen entry ${show(raw)} is neither "ADDRESS,CERT,KEY" nor "ADDRESS,CONFIG.PATH": ignored`,
    );
    return undefined;
  }
  let parsed: { hostname: string; port: number };
  try {
    parsed = parseListenAddress(address);
  } catch (error) {
    context.report("error", path, `${(error as Error).message}: entry ignored`);
    return undefined;
  }
  const common = {
    raw,
    address,
    hostname: parsed.hostname,
    port: parsed.port,
    certificatesText: pieces.slice(1).join(","),
  };
  if (third === undefined) {
    const certificates = readCertificates(context, second, path);
    return Object.freeze({
      ...common,
      certificatesPath: second,
      certificates: Object.freeze(certificates),
    });
  }
  if (pieces.length > 3) {
    context.report("warning", path, `Listen entry ${show(raw)} has extra pieces: ignored`);
  }
  if (second === "" || third === "") {
    context.report("error", path, `Listen entry ${show(raw)} has an empty certificate or key path`);
  }
  return Object.freeze({
    ...common,
    certificates: Object.freeze([Object.freeze({ pattern: "*", cert: second, key: third })]),
  });
}

/** The `listen` directive: HTTPS listeners with their certificates (TLS-1, TLS-5). */
const LISTEN_SETTING = Object.freeze<Setting<readonly ListenEntry[]>>({
  key: "listen",
  type: "listen",
  defaultText: "[ ]",
  when: "start",
  doc: 'HTTPS listeners: "ADDRESS,CERT,KEY" or "ADDRESS,CONFIG.PATH" naming a certificate list',
  isNew: false,
  secret: false,
  read(context, path) {
    const lookup = listChildren(context.tree, path);
    if (lookup.warning !== undefined) context.report("warning", path, lookup.warning);
    const entries: ListenEntry[] = [];
    for (const itemPath of lookup.paths) {
      const raw = lookupString(context.tree, itemPath);
      if (raw === undefined) {
        context.report("warning", itemPath, "Listen entry is not a string: ignored");
        continue;
      }
      const entry = readListenEntry(context, raw, itemPath);
      if (entry) entries.push(entry);
    }
    if (entries.length === 0) {
      context.report("warning", path, "No listen entry: the server accepts no connection");
    }
    return Object.freeze(entries);
  },
  render(value, path) {
    const lines = [line(path, renderList(value.map((entry) => entry.raw)))];
    const seen = new Set<string>();
    for (const entry of value) {
      if (entry.certificatesPath === undefined || seen.has(entry.certificatesPath)) continue;
      seen.add(entry.certificatesPath);
      const items = entry.certificates.map((item) => `${item.pattern} ${item.cert} ${item.key}`);
      lines.push(line(entry.certificatesPath, renderList(items)));
    }
    return lines;
  },
});

// ---------------------------------------------------------------------------------------------
// Shared directives.

const MODE_SETTING = stringSetting("mode", {
  default: "agent",
  when: "start",
  doc: "server or agent (README≠code: the default is agent)",
});

const DOMAINS_SETTING = stringSetting("domains", {
  default: DEFAULT_DOMAINS_FOLDER,
  when: "scan",
  doc: "folder of domain files, one file per domain named after it",
  check(value, context, path) {
    if (value === "") context.report("warning", path, "Empty domains folder: no domain is loaded");
  },
});

const LOG_SYSTEM_SETTING = stringSetting("log.system", {
  default: DEFAULT_SYSTEM_LOG,
  when: "sighup",
  doc: "system log target, e.g. console(output=stdout), file(path=…), syslog(…) (LOG-1)",
});

const LOG_ACCESS_SETTING = stringSetting("log.access", {
  default: "",
  when: "sighup",
  doc: "access log target (LOG-1); empty logs nothing",
});

// ---------------------------------------------------------------------------------------------
// The tables.

/** Server main file (DIR-1), plus `body_timeout` (new, ODD-21). */
export const SERVER_SETTINGS = Object.freeze(
  {
    mode: MODE_SETTING,
    listen: LISTEN_SETTING,
    headersSize: sizeSetting("headers_size", {
      default: "64kB",
      min: "1kB",
      max: "1MB",
      when: "start",
      doc: "largest request head accepted; bigger heads get 431",
    }),
    idleTimeoutMs: durationSetting("idle_timeout", {
      default: "15s",
      min: "5s",
      max: "60s",
      when: "start",
      doc: "keep-alive connections idle for longer are closed",
    }),
    readTimeoutMs: durationSetting("read_timeout", {
      default: "10s",
      min: "5s",
      max: "60s",
      when: "start",
      doc: "time allowed to receive a request head (DIR-2; the body has body_timeout)",
    }),
    bodyTimeoutMs: durationSetting("body_timeout", {
      default: "60s",
      min: "5s",
      max: "1h",
      when: "start",
      isNew: true,
      doc:
        "(new) longest pause while a request body arrives; no whole-body deadline, so big uploads stream (ODD-21)",
    }),
    writeTimeoutMs: durationSetting("write_timeout", {
      default: "20s",
      min: "5s",
      max: "60s",
      when: "request",
      doc: "longest wait for each message from the agent; idle limit of raw sessions",
    }),
    bodySize: sizeSetting("body_size", {
      default: "8MB",
      min: "64kB",
      max: "1GB",
      when: "domain",
      doc: "largest request body, default for the domain files' body_size",
    }),
    service: stringSetting("service", {
      default: DEFAULT_SERVICE_PATH,
      transform: "trim",
      when: "start",
      doc: "URL path of the agent endpoint (exact match, must start with /)",
      check: checkService,
    }),
    domains: DOMAINS_SETTING,
    unavailable: integerSetting("unavailable", {
      default: 404,
      min: 200,
      max: 999,
      when: "request",
      doc: "status sent to refused clients and agents (stealth)",
      check(value, context, path) {
        if (value < 400) {
          context.report("warning", path, `Status ${value} makes refusals look like successes`);
        } else if (value > 599) {
          context.report("warning", path, `Status ${value} is not a standard HTTP status`);
        }
      },
    }),
    transaction: booleanSetting("transaction", {
      default: true,
      when: "domain",
      doc: "send X-Transaction-Id to clients, default for the domain files' transaction",
    }),
    logSystem: LOG_SYSTEM_SETTING,
    logAccess: LOG_ACCESS_SETTING,
    logDisconnected: booleanSetting("log.disconnected", {
      default: false,
      when: "request",
      doc: "log requests for unknown or disconnected domains in the access log",
    }),
    sessionKey: stringSetting("session_key", {
      default: "",
      transform: "trim",
      secret: true,
      when: "start",
      isNew: true,
      doc:
        "(new) key sealing client session cookies; set the same on several servers to share sessions; empty = random per process",
    }),
    sessionLifetimeMs: durationSetting("session_lifetime", {
      default: "20mn",
      min: "1mn",
      max: "30d",
      when: "request",
      isNew: true,
      doc: "(new) how long a client session cookie stays valid after a Basic login",
    }),
  } as const satisfies SettingTable,
);

/** Agent main file (DIR-5). */
export const AGENT_SETTINGS = Object.freeze(
  {
    mode: MODE_SETTING,
    connectTimeoutMs: durationSetting("connect_timeout", {
      default: "5s",
      min: "5s",
      max: "60s",
      when: "request",
      doc: "time allowed to connect to a backend (TCP and TLS)",
    }),
    readTimeoutMs: durationSetting("read_timeout", {
      default: "10s",
      min: "5s",
      max: "60s",
      when: "request",
      doc: "longest wait for each request message from the server; deadline of backend writes",
    }),
    writeTimeoutMs: durationSetting("write_timeout", {
      default: "20s",
      min: "5s",
      max: "60s",
      when: "request",
      doc: "deadline of each read from the backend; idle limit of raw sessions",
    }),
    domains: DOMAINS_SETTING,
    logSystem: LOG_SYSTEM_SETTING,
    logAccess: LOG_ACCESS_SETTING,
  } as const satisfies SettingTable,
);

const ACTIVE_SETTING = booleanSetting("active", {
  default: false,
  when: "domain",
  doc: "yes to serve this domain (server) or keep its tunnel open (agent)",
});

const CONCURRENCY_SETTING = integerSetting("concurrency", {
  default: 20,
  min: 3,
  max: 1000,
  when: "domain",
  doc: "most simultaneous requests for the domain; more get 429",
});

const DOMAIN_BODY_SIZE_SETTING = sizeSetting("body_size", {
  default: (context) => context.defaults.bodySize,
  defaultText: "8MB",
  min: "64kB",
  max: "1GB",
  when: "domain",
  doc: "largest request body (default: the main file's body_size)",
});

const DOMAIN_TRANSACTION_SETTING = booleanSetting("transaction", {
  default: (context) => context.defaults.transaction,
  defaultText: "true",
  when: "domain",
  doc: "send X-Transaction-Id to clients (default: the main file's transaction)",
});

/** Server domain file (DIR-4). */
export const SERVER_DOMAIN_SETTINGS = Object.freeze(
  {
    active: ACTIVE_SETTING,
    secret: stringSetting("secret", {
      default: "",
      transform: "trim",
      secret: true,
      when: "domain",
      doc: "agent secret: plain text, $6$ crypt hash or @/path/file; empty refuses every agent",
      check: checkSecret,
    }),
    concurrency: CONCURRENCY_SETTING,
    bodySize: DOMAIN_BODY_SIZE_SETTING,
    transaction: DOMAIN_TRANSACTION_SETTING,
    forward: listSetting("forward", {
      when: "domain",
      doc: "networks (CIDR) whose X-Forwarded-For is trusted; empty trusts nobody",
      checkItem: checkNetwork,
    }),
    networks: listSetting("networks", {
      when: "domain",
      doc: "networks (CIDR) agents may connect from; empty allows any",
      checkItem: checkNetwork,
    }),
    clientsNetworks: listSetting("clients.networks", {
      when: "domain",
      doc: "networks (CIDR) clients may come from; empty allows any",
      checkItem: checkNetwork,
    }),
    clientsRanges: listSetting("clients.ranges", {
      when: "domain",
      doc: "UTC time windows clients are served in (ACL-3); empty means always",
      checkItem: checkRange,
    }),
    clientsCredentials: listSetting("clients.credentials", {
      when: "domain",
      secret: true,
      doc: "login:password, login:$6$hash or @/path/file entries; empty needs no login",
      checkItem: checkCredential,
      mask: maskCredential,
    }),
    clientsBanner: stringSetting("clients.banner", {
      default: "groom",
      transform: "trim",
      when: "domain",
      doc: "realm of the Basic authentication prompt",
    }),
  } as const satisfies SettingTable,
);

/** Directives of one `targets.<name>` section of an agent domain file (DIR-6, AGT-4…AGT-10). */
export const TARGET_SETTINGS = Object.freeze(
  {
    target: stringSetting("target", {
      default: "",
      transform: "trim",
      when: "domain",
      doc: "backend: http(s)://[weight@]host[:port][|…][/path?query] (required, AGT-5)",
    }),
    method: stringSetting("method", {
      default: "",
      transform: "trim",
      when: "domain",
      doc: "regex on the request method, case-insensitive (ODD-26); empty matches any",
    }),
    path: stringSetting("path", {
      default: "",
      transform: "trim",
      when: "domain",
      doc: "regex on the decoded request path, captures usable in target; empty matches any",
    }),
    host: stringSetting("host", {
      default: "target",
      transform: "lower",
      when: "domain",
      doc: 'Host header: target (backend host:port), remote/forwarded (client\'s), a name, or ""',
    }),
    insecure: booleanSetting("insecure", {
      default: false,
      when: "domain",
      isNew: true,
      doc: "(new) skip verification of an https backend's certificate (ODD-11)",
    }),
  } as const satisfies SettingTable,
);

/** One agent routing rule, in `targets.active` order (AGT-4). Strings are raw, not compiled. */
export type TargetConfig = { readonly name: string } & ConfigOf<typeof TARGET_SETTINGS>;

/** Checks the parts of a target URL groom 1.3 drops silently (DIR-6, AGT-5). */
function targetProblem(target: string): string | undefined {
  const scheme = /^https?:\/\//.exec(target);
  if (!scheme) return `Target "${target}" must start with http:// or https://`;
  const rest = target.slice(scheme[0].length);
  const slash = rest.indexOf("/");
  const hosts = (slash < 0 ? rest : rest.slice(0, slash)).split("|")
    .map((item) => item.trim().replace(/^[^@]*@/, "").trim())
    .filter((host) => host !== "");
  if (hosts.length === 0) return `Target "${target}" names no host`;
  return undefined;
}

/** The `targets` section of an agent domain file: `targets.active` and the named sections. */
const TARGETS_SETTING = Object.freeze<Setting<readonly TargetConfig[]>>({
  key: "targets.active",
  type: "targets",
  defaultText: "[ ]",
  when: "domain",
  doc: "names of the target sections, tried in this order (first match wins)",
  isNew: false,
  secret: false,
  read(context, path) {
    const base = splitPath(path).slice(0, -1).join(".");
    const names = readList(context, path);
    const targets: TargetConfig[] = [];
    for (const name of names) {
      const sectionPath = joinPath(base, name);
      const section = lookupValue(context.tree, sectionPath);
      if (typeof section !== "object" || section === null || Array.isArray(section)) {
        context.report("error", path, `Target "${name}" has no section ${name} { … }: ignored`);
        continue;
      }
      const fields = readTable(TARGET_SETTINGS, context, sectionPath);
      const targetPath = joinPath(sectionPath, TARGET_SETTINGS.target.key);
      if (fields.target === "") {
        context.report("error", sectionPath, `Target "${name}" has no target URL: ignored`);
        continue;
      }
      const problem = targetProblem(fields.target);
      if (problem !== undefined) {
        context.report("error", targetPath, `${problem}: target ignored`);
        continue;
      }
      let compiles = true;
      for (const field of ["method", "path"] as const) {
        if (fields[field] === "") continue;
        try {
          compilePattern(fields[field], { ignoreCase: field === "method" });
        } catch (error) {
          const where = joinPath(sectionPath, TARGET_SETTINGS[field].key);
          context.report("error", where, `${(error as Error).message}: target ignored`);
          compiles = false;
        }
      }
      if (compiles) targets.push(Object.freeze({ name, ...fields }));
    }
    const sections = lookupValue(context.tree, base);
    if (typeof sections === "object" && sections !== null && !Array.isArray(sections)) {
      for (const key of Object.keys(sections)) {
        if (key === "active" || names.includes(key)) continue;
        context.report(
          "warning",
          joinPath(base, key),
          `Target section "${key}" is not listed in targets.active: ignored`,
        );
      }
    }
    return Object.freeze(targets);
  },
  render(value, path) {
    const base = splitPath(path).slice(0, -1).join(".");
    const lines = [line(path, renderList(value.map((target) => target.name)))];
    for (const target of value) {
      lines.push(...renderTable(TARGET_SETTINGS, target, joinPath(base, target.name)));
    }
    return lines;
  },
});

/** Agent domain file (DIR-6), plus the per-target `insecure` (new, ODD-11). */
export const AGENT_DOMAIN_SETTINGS = Object.freeze(
  {
    active: ACTIVE_SETTING,
    secret: stringSetting("secret", {
      default: "",
      transform: "trim",
      secret: true,
      when: "domain",
      doc: "secret sent to the server as Authorization: Bearer (never hashed)",
    }),
    concurrency: CONCURRENCY_SETTING,
    bodySize: DOMAIN_BODY_SIZE_SETTING,
    transaction: DOMAIN_TRANSACTION_SETTING,
    remote: stringSetting("remote", {
      default: (context) => `${context.domain}:${DEFAULT_REMOTE_PORT}`,
      defaultText: `"<file name>:${DEFAULT_REMOTE_PORT}"`,
      transform: "trim",
      when: "domain",
      doc: "host:port the agent dials; the domain is this file's name, sent as Host and SNI",
      check(value, context, path) {
        if (value.includes("/")) {
          context.report("error", path, `Remote "${value}" must be host:port, not a URL`);
        }
      },
    }),
    service: stringSetting("service", {
      default: DEFAULT_SERVICE_PATH,
      transform: "trim",
      when: "domain",
      doc: "URL path of the server's agent endpoint (must start with /)",
      check: checkService,
    }),
    insecure: booleanSetting("insecure", {
      default: false,
      when: "domain",
      doc: "skip verification of the server's certificate",
    }),
    targets: TARGETS_SETTING,
  } as const satisfies SettingTable,
);

/** Typed server main configuration (DIR-1). Durations are in milliseconds, sizes in bytes. */
export type ServerConfig = ConfigOf<typeof SERVER_SETTINGS>;
/** Typed agent main configuration (DIR-5). Durations are in milliseconds. */
export type AgentConfig = ConfigOf<typeof AGENT_SETTINGS>;
/** Typed server domain configuration (DIR-4); `name` is the file's base name. */
export type ServerDomainConfig =
  & { readonly name: string }
  & ConfigOf<typeof SERVER_DOMAIN_SETTINGS>;
/** Typed agent domain configuration (DIR-6); `name` is the file's base name. */
export type AgentDomainConfig = { readonly name: string } & ConfigOf<typeof AGENT_DOMAIN_SETTINGS>;

/** The table of each file kind. */
export const SETTINGS_BY_KIND: { readonly [K in FileKind]: SettingTable } = Object.freeze({
  server: SERVER_SETTINGS,
  agent: AGENT_SETTINGS,
  "server-domain": SERVER_DOMAIN_SETTINGS,
  "agent-domain": AGENT_DOMAIN_SETTINGS,
});

/** Domain defaults when the main file sets none (DIR-1). */
export const DEFAULT_DOMAIN_DEFAULTS: DomainDefaults = Object.freeze({
  bodySize: bytesOf("8MB"),
  transaction: true,
});

/** One directive as listed by {@link directives}. */
export interface DirectiveInfo {
  /** Key relative to `groom`; target directives read `targets.<name>.target`. */
  readonly key: string;
  /** The declaration. */
  // deno-lint-ignore no-explicit-any
  readonly setting: Setting<any>;
}

/** Placeholder for a target section name in {@link directives}. */
export const TARGET_NAME_PLACEHOLDER = "<name>";

/** Every directive of a file kind, target sub-directives included, in table order. */
export function directives(kind: FileKind): DirectiveInfo[] {
  const list: DirectiveInfo[] = [];
  for (const setting of Object.values(SETTINGS_BY_KIND[kind])) {
    list.push({ key: setting.key, setting });
    if (setting.type === "targets") {
      for (const sub of Object.values(TARGET_SETTINGS)) {
        list.push({ key: `targets.${TARGET_NAME_PLACEHOLDER}.${sub.key}`, setting: sub });
      }
    }
  }
  return list;
}

// ---------------------------------------------------------------------------------------------
// Reading.

/** What reading a file produced: the typed configuration and every problem found. */
export interface ReadResult<C> {
  /** The configuration in effect (frozen). */
  readonly config: C;
  /** Problems in source order where positions are known. */
  readonly problems: readonly Problem[];
}

/** The parts of a parsed file reading needs (a `ParsedConf` fits). */
export interface ParsedTree {
  /** The parsed file. */
  readonly tree: ConfValue;
  /** Source positions by dotted path; may be empty. */
  readonly positions?: ReadonlyMap<string, ConfPosition>;
}

/** Options of the domain readers. */
export interface DomainReadOptions {
  /** Domain name: the domain file's base name (DOM-3). */
  readonly name: string;
  /** Defaults from the main file; {@link DEFAULT_DOMAIN_DEFAULTS} when absent. */
  readonly defaults?: DomainDefaults;
}

/** The position of `path` or of its nearest ancestor that has one. */
function positionOf(
  positions: ReadonlyMap<string, ConfPosition>,
  path: string,
): ConfPosition | undefined {
  const segments = splitPath(path);
  while (segments.length > 0) {
    const position = positions.get(segments.join("."));
    if (position) return position;
    segments.pop();
  }
  return undefined;
}

/** Creates a read context collecting into `problems`. */
function createContext(
  parsed: ParsedTree,
  problems: Problem[],
  domain: string,
  defaults: DomainDefaults,
): ReadContext {
  const positions = parsed.positions ?? new Map<string, ConfPosition>();
  return {
    tree: parsed.tree,
    positions,
    domain,
    defaults,
    report(severity, key, message) {
      const position = positionOf(positions, key);
      problems.push(
        position === undefined ? { severity, key, message } : { severity, key, message, position },
      );
    },
  };
}

/** Reads every setting of `table` under `base`. */
function readTable<T extends SettingTable>(
  table: T,
  context: ReadContext,
  base: string,
): ConfigOf<T> {
  const config: Record<string, unknown> = {};
  for (const [field, setting] of Object.entries(table)) {
    config[field] = setting.read(context, joinPath(base, setting.key));
  }
  return Object.freeze(config) as ConfigOf<T>;
}

/** Sorts problems by position (unpositioned last), keeping report order otherwise. */
function sortProblems(problems: readonly Problem[]): Problem[] {
  return problems
    .map((problem, index) => ({ problem, index }))
    .sort((a, b) => {
      const pa = a.problem.position;
      const pb = b.problem.position;
      if (pa && pb) {
        return pa.file.localeCompare(pb.file) || pa.line - pb.line || pa.column - pb.column ||
          a.index - b.index;
      }
      if (pa) return -1;
      if (pb) return 1;
      return a.index - b.index;
    })
    .map((entry) => entry.problem);
}

/**
 * `groom.mode` as written (CLI-9), default `agent`; not trimmed, as in groom 1.3. Anything other
 * than `server` or `agent` is for the CLI to refuse (exit 3).
 */
export function readMode(tree: ConfValue): string {
  return lookupString(tree, joinPath(ROOT_SECTION, MODE_SETTING.key)) ?? "agent";
}

/** Reads a server main file (DIR-1) and checks its keys. */
export function readServerConfig(parsed: ParsedTree): ReadResult<ServerConfig> {
  const problems: Problem[] = [];
  const context = createContext(parsed, problems, "", DEFAULT_DOMAIN_DEFAULTS);
  const config = readTable(SERVER_SETTINGS, context, ROOT_SECTION);
  const referenced = config.listen.flatMap((entry) =>
    entry.certificatesPath === undefined ? [] : [entry.certificatesPath]
  );
  checkKeys(context, "server", referenced);
  return { config, problems: sortProblems(problems) };
}

/** Reads an agent main file (DIR-5) and checks its keys. */
export function readAgentConfig(parsed: ParsedTree): ReadResult<AgentConfig> {
  const problems: Problem[] = [];
  const context = createContext(parsed, problems, "", DEFAULT_DOMAIN_DEFAULTS);
  const config = readTable(AGENT_SETTINGS, context, ROOT_SECTION);
  checkKeys(context, "agent", []);
  return { config, problems: sortProblems(problems) };
}

/** Reads a server domain file (DIR-4) and checks its keys. */
export function readServerDomainConfig(
  parsed: ParsedTree,
  options: DomainReadOptions,
): ReadResult<ServerDomainConfig> {
  return readDomainFile(
    SERVER_DOMAIN_SETTINGS,
    "server-domain",
    parsed,
    options,
    (fields, context) => warnWithoutSecret(context, fields, "every agent is refused"),
  );
}

/** Reads an agent domain file (DIR-6) and checks its keys. */
export function readAgentDomainConfig(
  parsed: ParsedTree,
  options: DomainReadOptions,
): ReadResult<AgentDomainConfig> {
  return readDomainFile(
    AGENT_DOMAIN_SETTINGS,
    "agent-domain",
    parsed,
    options,
    (fields, context) => {
      warnWithoutSecret(context, fields, "the server refuses the agent");
      if (fields.active && fields.targets.length === 0) {
        context.report(
          "warning",
          joinPath(ROOT_SECTION, AGENT_DOMAIN_SETTINGS.targets.key),
          "Active domain without a usable target: every request gets 502",
        );
      }
    },
  );
}

/**
 * Reads a domain file with `table`, runs the kind's own `check` on the fields, then checks the
 * keys; the domain's `name` is the file's (DIR-3).
 */
function readDomainFile<T extends SettingTable>(
  table: T,
  kind: FileKind,
  parsed: ParsedTree,
  options: DomainReadOptions,
  check: (fields: ConfigOf<T>, context: ReadContext) => void,
): ReadResult<{ readonly name: string } & ConfigOf<T>> {
  const problems: Problem[] = [];
  const defaults = options.defaults ?? DEFAULT_DOMAIN_DEFAULTS;
  const context = createContext(parsed, problems, options.name, defaults);
  const fields = readTable(table, context, ROOT_SECTION);
  check(fields, context);
  checkKeys(context, kind, []);
  // The spread's type loses the mapped fields' link to T; the value is exactly this.
  const config = Object.freeze({ name: options.name, ...fields }) as
    & { readonly name: string }
    & ConfigOf<T>;
  return { config, problems: sortProblems(problems) };
}

/** Warns about an active domain without a secret; `consequence` says what follows on this side. */
function warnWithoutSecret(
  context: ReadContext,
  fields: { readonly active: boolean; readonly secret: string },
  consequence: string,
): void {
  if (fields.active && fields.secret === "") {
    context.report(
      "warning",
      joinPath(ROOT_SECTION, "secret"),
      `Active domain without a secret: ${consequence}`,
    );
  }
}

/** Domain defaults taken from a server main configuration (DIR-4). */
export function domainDefaults(server: ServerConfig): DomainDefaults {
  return Object.freeze({ bodySize: server.bodySize, transaction: server.transaction });
}

// ---------------------------------------------------------------------------------------------
// Unknown directives.

/** Which keys a section accepts. */
interface KeySchema {
  readonly leaves: Set<string>;
  readonly sections: Map<string, KeySchema>;
  /** Schema of every child section (targets.<name>). */
  dynamic?: KeySchema;
}

function emptySchema(): KeySchema {
  return { leaves: new Set(), sections: new Map() };
}

/** Builds the key schema of a table (its keys below `groom`). */
function schemaOf(table: SettingTable): KeySchema {
  const root = emptySchema();
  for (const setting of Object.values(table)) {
    const segments = splitPath(setting.key);
    let schema = root;
    for (const segment of segments.slice(0, -1)) {
      let next = schema.sections.get(segment);
      if (!next) {
        next = emptySchema();
        schema.sections.set(segment, next);
      }
      schema = next;
    }
    schema.leaves.add(segments[segments.length - 1] ?? "");
    if (setting.type === "targets") schema.dynamic = schemaOf(TARGET_SETTINGS);
  }
  return root;
}

/** Edit distance counting a swap of two neighbours as one edit, for "did you mean". */
function distance(a: string, b: string): number {
  const rows: number[][] = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => rows[i]?.[j] ?? 0;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, at(i - 2, j - 2) + 1);
      }
      (rows[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The closest known name, if close enough to be a likely typo. */
function suggestion(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(name.toLowerCase(), candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const limit = name.length <= 4 ? 1 : name.length <= 8 ? 2 : 3;
  return bestDistance <= limit ? best : undefined;
}

const KIND_LABELS: { readonly [K in FileKind]: string } = {
  server: "server main files",
  agent: "agent main files",
  "server-domain": "server domain files",
  "agent-domain": "agent domain files",
};

/** Kinds declaring `key` (relative to `groom`) or a directive inside it, for "only used in". */
function kindsDeclaring(key: string): FileKind[] {
  const kinds: FileKind[] = [];
  for (const kind of Object.keys(SETTINGS_BY_KIND) as FileKind[]) {
    const declared = directives(kind).some((directive) =>
      directive.key === key || directive.key.startsWith(`${key}.`)
    );
    if (declared) kinds.push(kind);
  }
  return kinds;
}

/**
 * Warns about every key groom does not read: keys outside `groom` (unless a listen entry names
 * them), unknown directives with the nearest known one as a suggestion, directives of another
 * file kind, keys containing a dot (CFG-9: unreachable), and scalars where a section is expected.
 */
function checkKeys(context: ReadContext, kind: FileKind, referenced: readonly string[]): void {
  const tree = context.tree;
  if (typeof tree !== "object" || tree === null || Array.isArray(tree)) return;
  const isReferenced = (path: string) =>
    referenced.some((ref) => splitPath(ref).join(".") === path);
  const leadsToReference = (path: string) =>
    referenced.some((ref) => splitPath(ref).join(".").startsWith(`${path}.`));
  const walk = (value: ConfValue, path: string, schema: KeySchema, relative: string): void => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return;
    for (const [key, child] of Object.entries(value)) {
      const childPath = joinPath(path, key);
      const childRelative = joinPath(relative, key);
      if (isReferenced(childPath) || schema.leaves.has(key)) continue;
      const section = schema.sections.get(key) ?? schema.dynamic;
      if (section) {
        if (typeof child === "object" && child !== null && !Array.isArray(child)) {
          walk(
            child,
            childPath,
            section,
            schema.dynamic && !schema.sections.has(key)
              ? joinPath(relative, TARGET_NAME_PLACEHOLDER)
              : childRelative,
          );
        } else {
          context.report(
            "warning",
            childPath,
            `"${key}" should be a section ${key} { … }: its value is ignored`,
          );
        }
        continue;
      }
      if (leadsToReference(childPath)) {
        walk(child, childPath, emptySchema(), childRelative);
        continue;
      }
      if (key.includes(".")) {
        const parts = key.split(".");
        context.report(
          "warning",
          childPath,
          `Key "${key}" contains a dot and cannot be looked up: write ${parts[0]} { ${
            parts.slice(1).join(".")
          } = … }`,
        );
        continue;
      }
      const elsewhere = kindsDeclaring(childRelative).filter((other) => other !== kind);
      if (elsewhere.length > 0) {
        const where = elsewhere.map((other) => KIND_LABELS[other]).join(" and ");
        context.report("warning", childPath, `Directive "${key}" is only used in ${where}`);
        continue;
      }
      const hint = suggestion(key, [...schema.leaves, ...schema.sections.keys()]);
      context.report(
        "warning",
        childPath,
        `Unknown directive "${key}"${hint === undefined ? "" : ` (did you mean "${hint}"?)`}`,
      );
    }
  };
  for (const [key, child] of Object.entries(tree)) {
    if (key === ROOT_SECTION) {
      if (typeof child === "object" && child !== null && !Array.isArray(child)) {
        walk(child, ROOT_SECTION, schemaOf(SETTINGS_BY_KIND[kind]), "");
      } else {
        context.report("warning", key, `"${ROOT_SECTION}" should be a section: nothing is read`);
      }
      continue;
    }
    if (isReferenced(key)) continue;
    if (leadsToReference(key)) continue;
    context.report(
      "warning",
      key,
      `Top-level key "${key}" is ignored: directives live in the ${ROOT_SECTION} { … } section`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Output.

/** Renders every setting of a table as `key = value` lines under `base`, secrets masked. */
function renderTable<T extends SettingTable>(
  table: T,
  config: ConfigOf<T>,
  base: string,
): string[] {
  const lines: string[] = [];
  for (const [field, setting] of Object.entries(table)) {
    lines.push(
      ...setting.render((config as Record<string, unknown>)[field], joinPath(base, setting.key)),
    );
  }
  return lines;
}

/**
 * The effective settings of a configuration as `key = value` lines (keys relative to `groom`),
 * with secrets masked (`secret` and credential passwords become `****`; `@file` references stay
 * visible), for `groom check`.
 */
export function renderSettings<T extends SettingTable>(table: T, config: ConfigOf<T>): string[] {
  return renderTable(table, config, ROOT_SECTION);
}

/** One line for a problem: `file:line:column: severity: key: message`. */
export function formatProblem(problem: Problem): string {
  const where = problem.position
    ? `${problem.position.file}:${problem.position.line}:${problem.position.column}: `
    : "";
  const key = problem.key === "" ? "" : `${problem.key}: `;
  return `${where}${problem.severity}: ${key}${problem.message}`;
}
