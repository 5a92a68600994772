/**
 * Agent routing (AGT-4…AGT-10): parsing of a target's `scheme://HOSTS[TEMPLATE]` text, compilation
 * of the method/path regexes, first-match selection, weighted choice of a backend, rewriting of the
 * request-target with Go's template expansion and query merge, and the Host header rule. With the
 * fixes: the method regex is compiled case-insensitively instead of upper-cased (ODD-26), broken
 * targets are reported, and the backend authority always comes from the target, never from the
 * client's path (ODD-41). Pure: no I/O, randomness injected.
 * @module
 */

/** Smallest weight of a backend host (AGT-5). */
export const MIN_WEIGHT = 1;
/** Largest weight of a backend host; larger values are clamped (AGT-5). */
export const MAX_WEIGHT = 100;
/** Port used when an `http` host has none (AGT-9). */
export const DEFAULT_HTTP_PORT = 80;
/** Port used when an `https` host has none (AGT-9). */
export const DEFAULT_HTTPS_PORT = 443;

/** One backend host of a target. */
export interface Backend {
  /** Host name or IP literal, without brackets (`::1`, not `[::1]`). */
  readonly host: string;
  /** TCP port, the scheme's default when the target gave none. */
  readonly port: number;
  /** Relative weight, 1–100 (AGT-6). */
  readonly weight: number;
  /** `host:port` with brackets around IPv6 literals, e.g. `127.0.0.1:8000`, `[::1]:80`. */
  readonly hostPort: string;
}

/** A parsed `target` value (AGT-5). */
export interface ParsedTarget {
  /** `http` or `https`, always lower case. */
  readonly scheme: "http" | "https";
  /** At least one backend, in the order written. */
  readonly backends: readonly Backend[];
  /** Sum of the backend weights. */
  readonly totalWeight: number;
  /** Path/query template (the text after the hosts, trimmed; possibly empty). */
  readonly template: string;
}

/** How the Host header toward the backend is chosen (AGT-10). */
export type HostRule =
  | { readonly kind: "target" }
  | { readonly kind: "client" }
  | { readonly kind: "none" }
  | { readonly kind: "literal"; readonly value: string };

/** A compiled, usable target section. */
export interface Target extends ParsedTarget {
  /** Section name from `targets.active`. */
  readonly name: string;
  /** Method regex, case-insensitive (ODD-26); absent = any method. */
  readonly methodPattern?: RegExp;
  /** Path regex on the decoded path; absent = any path. Also drives rewriting (AGT-7). */
  readonly pathPattern?: RegExp;
  /** Host header rule (AGT-10). */
  readonly hostRule: HostRule;
  /** Skip verification of an `https` backend's certificate (ODD-11: verified by default). */
  readonly insecure: boolean;
}

/** One `targets.<name>` section as read from a domain file. */
export interface TargetConfig {
  /** Section name. */
  readonly name: string;
  /** `targets.<name>.target`. */
  readonly target: string;
  /** `targets.<name>.method`; empty or absent = any. */
  readonly method?: string;
  /** `targets.<name>.path`; empty or absent = any. */
  readonly path?: string;
  /** `targets.<name>.host`; absent = `target`, empty = no Host header. */
  readonly host?: string;
  /** Skip backend certificate verification for this target. */
  readonly insecure?: boolean;
}

/** Result of {@linkcode compileTargets}. */
export interface CompiledTargets {
  /** The usable targets, in the given order. */
  readonly targets: readonly Target[];
  /** One message per dropped target, e.g. `Cannot use target "api": …`. */
  readonly problems: readonly string[];
}

/** Where and what to send to the backend, from {@linkcode rewriteRequest}. */
export interface BackendRequest {
  /** The target's scheme. */
  readonly scheme: "http" | "https";
  /** The chosen backend's host (no brackets); always one the target lists (ODD-41). */
  readonly backendHost: string;
  /** The chosen backend's port. */
  readonly port: number;
  /** `host:port` of the chosen backend (brackets around IPv6), for the Host header rule. */
  readonly backendHostPort: string;
  /** The request-target for the request line: origin form, or the client's own when not rewritten. */
  readonly requestTarget: string;
}

const TARGET_REGEXP = /^(https?):\/\/([^/]*)(.*)$/s;
const HOST_NAME_REGEXP = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$/;
const PORT_REGEXP = /^[0-9]{1,5}$/;
const WEIGHT_REGEXP = /^[+-]?[0-9]+$/;
const BAD_ESCAPE_REGEXP = /%(?![0-9A-Fa-f]{2})/;
const GO_FLAGS_REGEXP = /^\(\?([ims]+)\)/;
const TEMPLATE_NAME_REGEXP = /^[\p{L}\p{Nd}_]+/u;

/**
 * Parses a `target` value per AGT-5: `http(s)://HOSTS[TEMPLATE]`, HOSTS split on `|`, each item
 * `[weight@]host[:port]`, weights clamped to 1–100 (non-numeric → 1).
 *
 * @returns the parsed target, or a problem text when the value is unusable.
 */
export function parseTarget(text: string): ParsedTarget | string {
  const trimmed = text.trim();
  const match = TARGET_REGEXP.exec(trimmed);
  if (match === null) return `target "${trimmed}" does not start with http:// or https://`;
  const scheme = match[1] === "https" ? "https" : "http";
  const hostsText = match[2] ?? "";
  const template = (match[3] ?? "").trim();
  if (BAD_ESCAPE_REGEXP.test(template)) {
    return `target "${trimmed}" has an invalid URL escape in its path template`;
  }
  const defaultPort = scheme === "https" ? DEFAULT_HTTPS_PORT : DEFAULT_HTTP_PORT;
  const backends: Backend[] = [];
  for (const rawItem of hostsText.split("|")) {
    const item = rawItem.trim();
    if (item === "") continue;
    const at = item.lastIndexOf("@");
    const weight = at < 0 ? MIN_WEIGHT : parseWeight(item.slice(0, at));
    const backend = parseHostPort(item.slice(at + 1), defaultPort, weight);
    if (typeof backend === "string") return `target "${trimmed}": ${backend}`;
    backends.push(backend);
  }
  if (backends.length === 0) return `target "${trimmed}" has no host`;
  const totalWeight = backends.reduce((sum, backend) => sum + backend.weight, 0);
  return { scheme, backends, totalWeight, template };
}

function parseWeight(text: string): number {
  const trimmed = text.trim();
  if (!WEIGHT_REGEXP.test(trimmed)) return MIN_WEIGHT;
  return Math.min(MAX_WEIGHT, Math.max(MIN_WEIGHT, Number.parseInt(trimmed, 10)));
}

function parseHostPort(text: string, defaultPort: number, weight: number): Backend | string {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0) return `invalid host "${text}"`;
    host = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return `invalid host "${text}"`;
      portText = rest.slice(1);
    }
    if (!isIpv6(host)) return `invalid host "${text}"`;
  } else {
    const colon = text.indexOf(":");
    host = colon < 0 ? text : text.slice(0, colon);
    if (colon >= 0) portText = text.slice(colon + 1);
    if (!HOST_NAME_REGEXP.test(host)) return `invalid host "${text}"`;
  }
  let port = defaultPort;
  if (portText !== undefined) {
    if (!PORT_REGEXP.test(portText)) return `invalid port in "${text}"`;
    port = Number.parseInt(portText, 10);
    if (port < 1 || port > 65_535) return `invalid port in "${text}"`;
  }
  const hostPort = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  return { host: host.toLowerCase(), port, weight, hostPort: hostPort.toLowerCase() };
}

function isIpv6(text: string): boolean {
  try {
    return new URL(`http://[${text}]/`).hostname !== "";
  } catch {
    return false;
  }
}

/**
 * Translates the Go RE2 spellings that JavaScript lacks: a leading `(?i)`/`(?s)`/`(?m)` becomes
 * flags, `(?P<name>` becomes `(?<name>`. Escapes and character classes are skipped.
 */
function translateGoRegexp(source: string): { source: string; flags: string } {
  let flags = "";
  const leading = GO_FLAGS_REGEXP.exec(source);
  let text = source;
  if (leading !== null) {
    flags = [...new Set(leading[1] ?? "")].join("");
    text = source.slice(leading[0].length);
  }
  let out = "";
  let inClass = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === "\\") {
      out += text.slice(i, i + 2);
      i++;
    } else if (inClass) {
      if (char === "]") inClass = false;
      out += char;
    } else if (char === "[") {
      inClass = true;
      out += char;
    } else if (text.startsWith("(?P<", i)) {
      out += "(?<";
      i += 3;
    } else {
      out += char;
    }
  }
  return { source: out, flags };
}

function compileRegexp(source: string, extraFlags: string): RegExp {
  const translated = translateGoRegexp(source);
  const flags = [...new Set(translated.flags + extraFlags)].join("");
  return new RegExp(translated.source, flags);
}

function hostRuleOf(host: string | undefined): HostRule {
  if (host === undefined) return { kind: "target" };
  const value = host.trim().toLowerCase();
  if (value === "target") return { kind: "target" };
  if (value === "remote" || value === "forwarded") return { kind: "client" };
  if (value === "") return { kind: "none" };
  return { kind: "literal", value };
}

/**
 * Compiles target sections in order (AGT-4, AGT-5, DIR-6). The method regex is compiled
 * case-insensitively (ODD-26). A section with an unusable target or a regex that does not compile
 * is dropped and reported in `problems` (the original dropped it silently).
 */
export function compileTargets(configs: readonly TargetConfig[]): CompiledTargets {
  const targets: Target[] = [];
  const problems: string[] = [];
  for (const config of configs) {
    const parsed = parseTarget(config.target);
    if (typeof parsed === "string") {
      problems.push(`Cannot use target "${config.name}": ${parsed}`);
      continue;
    }
    let methodPattern: RegExp | undefined;
    let pathPattern: RegExp | undefined;
    const method = config.method?.trim() ?? "";
    const path = config.path?.trim() ?? "";
    try {
      if (method !== "") methodPattern = compileRegexp(method, "i");
    } catch (error) {
      problems.push(
        `Cannot use target "${config.name}": invalid method regex "${method}": ${messageOf(error)}`,
      );
      continue;
    }
    try {
      if (path !== "") pathPattern = compileRegexp(path, "");
    } catch (error) {
      problems.push(
        `Cannot use target "${config.name}": invalid path regex "${path}": ${messageOf(error)}`,
      );
      continue;
    }
    targets.push({
      ...parsed,
      name: config.name,
      ...(methodPattern === undefined ? {} : { methodPattern }),
      ...(pathPattern === undefined ? {} : { pathPattern }),
      hostRule: hostRuleOf(config.host),
      insecure: config.insecure ?? false,
    });
  }
  return { targets, problems };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Returns the first target whose method regex matches `method` and whose path regex matches the
 * decoded `path` (no query); regexes are unanchored unless they anchor themselves (AGT-4).
 * `undefined` means synthetic 502.
 */
export function selectTarget(
  targets: readonly Target[],
  method: string,
  path: string,
): Target | undefined {
  return targets.find((target) =>
    (target.methodPattern === undefined || target.methodPattern.test(method)) &&
    (target.pathPattern === undefined || target.pathPattern.test(path))
  );
}

/**
 * Weighted choice (AGT-6): r = floor(random() × total weight), first backend whose cumulative
 * weight exceeds r.
 *
 * @param random returns a number in [0, 1), like `Math.random`.
 */
export function pickBackend(target: ParsedTarget, random: () => number = Math.random): Backend {
  const draw = Math.floor(random() * target.totalWeight);
  const r = Math.min(Math.max(draw, 0), target.totalWeight - 1);
  let cumulative = 0;
  for (const backend of target.backends) {
    cumulative += backend.weight;
    if (cumulative > r) return backend;
  }
  // Unreachable with totalWeight = sum of weights; keeps the type total.
  return target.backends[target.backends.length - 1] as Backend;
}

/** Options of {@linkcode rewriteRequest}. */
export interface RewriteOptions {
  /** Random source for the weighted choice; defaults to `Math.random`. */
  readonly random?: () => number;
}

/**
 * Chooses a backend and computes the request-target (AGT-7, AGT-8). The backend authority is
 * always the target's scheme/host/port (ODD-41): the rewritten path is only ever a path, made to
 * start with exactly one `/`, and characters that came from the client (`?`, `#`, `%`, and in the
 * query part `&`, `=`, `+`) are escaped so they cannot create query parameters.
 *
 * @param request.target the request-target exactly as the client sent it (path and query)
 * @param request.path the percent-decoded request path, without the query
 */
export function rewriteRequest(
  target: Target,
  request: { readonly target: string; readonly path: string },
  options: RewriteOptions = {},
): BackendRequest {
  const backend = pickBackend(target, options.random);
  const base = {
    scheme: target.scheme,
    backendHost: backend.host,
    port: backend.port,
    backendHostPort: backend.hostPort,
  };
  const raw = target.pathPattern === undefined
    ? target.template
    : expandAll(target.pathPattern, request.path, target.template);
  const hashIndex = raw.indexOf("#");
  const withoutFragment = hashIndex < 0 ? raw : raw.slice(0, hashIndex);
  const queryIndex = withoutFragment.indexOf("?");
  const rawPath = queryIndex < 0 ? withoutFragment : withoutFragment.slice(0, queryIndex);
  const templateQuery = parseQuery(queryIndex < 0 ? "" : withoutFragment.slice(queryIndex + 1));
  const newPath = percentDecode(rawPath);
  if (newPath.length === 0 && templateQuery.size === 0) {
    return { ...base, requestTarget: request.target };
  }
  const pathBytes = newPath.length === 0 ? utf8Binary(request.path) : newPath;
  const clientQueryIndex = request.target.indexOf("?");
  const query = parseQuery(clientQueryIndex < 0 ? "" : request.target.slice(clientQueryIndex + 1));
  for (const [key, values] of templateQuery) {
    if ((values[0] ?? "") === "") query.delete(key);
    else query.set(key, values);
  }
  const encodedQuery = encodeQuery(query);
  const path = "/" + pathBytes.replace(/^\/+/, "");
  const requestTarget = escapePath(path) + (encodedQuery === "" ? "" : `?${encodedQuery}`);
  return { ...base, requestTarget };
}

/**
 * Replaces every match of `pattern` in `path` with the expanded template, Go `ReplaceAll` style
 * (an empty match right after a previous match is skipped). Client text is escaped so that only
 * the template's own `?`/`#` structure the result.
 */
function expandAll(pattern: RegExp, path: string, template: string): string {
  const global = new RegExp(
    pattern.source,
    pattern.flags.includes("g") ? pattern.flags : pattern.flags + "g",
  );
  let out = "";
  let last = 0;
  let previousEnd = -1;
  for (const match of path.matchAll(global)) {
    const start = match.index;
    const end = start + match[0].length;
    if (start === end && start === previousEnd) continue;
    out += escapeClient(path.slice(last, start), out.includes("?"));
    out += expandTemplate(template, match, out.includes("?"));
    last = end;
    previousEnd = end;
  }
  return out + escapeClient(path.slice(last), out.includes("?"));
}

/**
 * Go `Regexp.Expand`: `$name`/`${name}` (greedy letters, digits, underscore), all-digit names are
 * group numbers (no leading zero), unknown or unmatched groups expand to nothing, `$$` is `$`, a
 * malformed reference keeps its `$`.
 */
function expandTemplate(template: string, match: RegExpExecArray, inQuery: boolean): string {
  let out = "";
  let rest = template;
  for (;;) {
    const dollar = rest.indexOf("$");
    if (dollar < 0) break;
    out += rest.slice(0, dollar);
    rest = rest.slice(dollar + 1);
    if (rest.startsWith("$")) {
      out += "$";
      rest = rest.slice(1);
      continue;
    }
    const brace = rest.startsWith("{");
    const nameMatch = TEMPLATE_NAME_REGEXP.exec(brace ? rest.slice(1) : rest);
    const name = nameMatch?.[0] ?? "";
    if (name === "" || (brace && rest[1 + name.length] !== "}")) {
      out += "$";
      continue;
    }
    rest = rest.slice(name.length + (brace ? 2 : 0));
    const value = groupValue(match, name);
    out += escapeClient(value, inQuery || out.includes("?"));
  }
  return out + rest;
}

function groupValue(match: RegExpExecArray, name: string): string {
  if (/^[0-9]+$/.test(name)) {
    if (name.length > 1 && name.startsWith("0")) return "";
    const index = Number.parseInt(name, 10);
    return index < match.length ? match[index] ?? "" : "";
  }
  return match.groups?.[name] ?? "";
}

/** Escapes client-derived text so it cannot add query, fragment or escape structure. */
function escapeClient(text: string, inQuery: boolean): string {
  if (inQuery) return queryEscape(utf8Binary(text));
  return text.replace(/[%?#]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** A JS string as its UTF-8 bytes, one char per byte (latin-1 "binary string"). */
function utf8Binary(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) out += String.fromCharCode(byte);
  return out;
}

/** Percent-decodes into a binary string; template escapes were validated at parse time. */
function percentDecode(text: string): string {
  const bytes = utf8Binary(text);
  return bytes.replace(
    /%([0-9A-Fa-f]{2})/g,
    (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)),
  );
}

const HEX = "0123456789ABCDEF";

function escapeBytes(bytes: string, keep: (code: number) => boolean, spacePlus: boolean): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const code = bytes.charCodeAt(i);
    if (keep(code)) out += bytes[i];
    else if (spacePlus && code === 0x20) out += "+";
    else out += "%" + HEX[code >> 4] + HEX[code & 15];
  }
  return out;
}

function isUnreserved(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x61 && code <= 0x7a) || code === 0x2d || code === 0x2e || code === 0x5f ||
    code === 0x7e;
}

/** Go `url.PathEscape`-for-paths rules (`EscapedPath`): also keeps `$&+,/:;=@`. */
function escapePath(bytes: string): string {
  return escapeBytes(
    bytes,
    (code) => isUnreserved(code) || "$&+,/:;=@".includes(String.fromCharCode(code)),
    false,
  );
}

/** Go `url.QueryEscape`: unreserved kept, space as `+`, everything else escaped. */
function queryEscape(bytes: string): string {
  return escapeBytes(bytes, isUnreserved, true);
}

/** Go `url.ParseQuery` into binary-string keys/values; bad pairs (bad escape, `;`) are skipped. */
function parseQuery(raw: string): Map<string, string[]> {
  const query = new Map<string, string[]>();
  for (const pair of raw.split("&")) {
    if (pair === "" || pair.includes(";")) continue;
    const eq = pair.indexOf("=");
    const key = queryUnescape(eq < 0 ? pair : pair.slice(0, eq));
    const value = queryUnescape(eq < 0 ? "" : pair.slice(eq + 1));
    if (key === undefined || value === undefined) continue;
    const values = query.get(key);
    if (values === undefined) query.set(key, [value]);
    else values.push(value);
  }
  return query;
}

function queryUnescape(text: string): string | undefined {
  if (BAD_ESCAPE_REGEXP.test(text)) return undefined;
  return percentDecode(text.replaceAll("+", " "));
}

/** Go `url.Values.Encode`: keys sorted byte-wise, `key=value` pairs joined by `&`. */
function encodeQuery(query: Map<string, string[]>): string {
  const keys = [...query.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const parts: string[] = [];
  for (const key of keys) {
    for (const value of query.get(key) ?? []) {
      parts.push(`${queryEscape(key)}=${queryEscape(value)}`);
    }
  }
  return parts.join("&");
}

/**
 * The Host header toward the backend (AGT-10): `target` → the backend's `host:port` (port always
 * present); `remote`/`forwarded` → the client's Host exactly as sent (none if it sent none); any
 * other value → that value lower-cased; an explicitly empty value → no Host header (`undefined`).
 */
export function hostHeader(
  target: Pick<Target, "hostRule">,
  context: { readonly clientHost?: string | undefined; readonly backendHostPort: string },
): string | undefined {
  switch (target.hostRule.kind) {
    case "target":
      return context.backendHostPort;
    case "client":
      return context.clientHost;
    case "none":
      return undefined;
    case "literal":
      return target.hostRule.value;
  }
}
