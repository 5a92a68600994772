/**
 * CIDR lists (`networks`, `clients.networks`, `forward`; ACL-1, ACL-2, SRV-6, SRV-9, PROTO-7
 * row 5) compiled once into 128-bit masks, so each check is a few bigint operations per entry.
 * Differences from the original, deliberate: a bare IP is taken as a single host (/32 or /128) with
 * a warning instead of being ignored silently; invalid entries are reported; an IPv4-mapped IPv6
 * peer (`::ffff:1.2.3.4`, what Deno's dual-stack listeners report for IPv4 clients) matches IPv4
 * prefixes. What an empty list means is the caller's decision ({@linkcode NetworkList.isEmpty}).
 * @module
 */

/** A compiled CIDR list, from {@linkcode compileNetworks}. */
export interface NetworkList {
  /**
   * Whether the peer address (`1.2.3.4`, `1.2.3.4:port`, `::1`, `[::1]:port`, zone allowed) is
   * inside one of the prefixes. An address that is not an IP matches nothing.
   */
  matches(address: string): boolean;
  /** Entries ignored or reinterpreted, one readable text each. */
  readonly problems: readonly string[];
  /** Number of usable prefixes. */
  readonly size: number;
  /**
   * Whether the configured list had no entries at all, so that the caller applies its default
   * (ACL-1: allow for `networks` and `clients.networks`, deny for `forward`). A list whose entries
   * are all invalid is not empty: it matches nothing (fail closed).
   */
  readonly isEmpty: boolean;
}

/** An IP address as a 128-bit number; IPv4 is held in its IPv4-mapped IPv6 form. */
interface IpAddress {
  value: bigint;
  /** Written as IPv4 (`a.b.c.d`), not as IPv6 text. */
  ipv4: boolean;
}

/** A compiled prefix. */
interface Rule {
  network: bigint;
  mask: bigint;
  /** IPv4 prefixes also match IPv4-mapped IPv6 peers; IPv6 prefixes never match IPv4 peers. */
  ipv4: boolean;
}

/** `::ffff:0:0/96`, where IPv4 addresses live in the IPv6 space (RFC 4291 §2.5.5.2). */
const IPV4_MAPPED_PREFIX = 0xffffn << 32n;
/** All 128 bits set. */
const ALL_ONES = (1n << 128n) - 1n;
/** Dotted-quad IPv4 without leading zeros (Go's netip refuses them: they read as octal elsewhere). */
const IPV4_REGEXP = /^(?:0|[1-9]\d{0,2})(?:\.(?:0|[1-9]\d{0,2})){3}$/;
/** One IPv6 group: 1 to 4 hexadecimal digits. */
const IPV6_GROUP_REGEXP = /^[0-9A-Fa-f]{1,4}$/;
/** A prefix length: decimal without leading zeros. */
const PREFIX_LENGTH_REGEXP = /^(?:0|[1-9]\d{0,2})$/;

/**
 * Compiles a CIDR list (ACL-1, ACL-2). Entries are `a.b.c.d/n` or `x:y::/n` (host bits allowed:
 * `10.1.2.3/8` is `10.0.0.0/8`), trimmed; a bare IP counts as a single host with a warning
 * problem; anything else is reported in `problems` and ignored.
 *
 * @example
 * ```ts
 * const list = compileNetworks(["10.0.0.0/8", "::1/128"]);
 * list.matches("10.1.2.3:51234"); // true
 * list.matches("[::ffff:10.1.2.3]:51234"); // true (IPv4-mapped)
 * ```
 */
export function compileNetworks(entries: readonly string[]): NetworkList {
  const rules: Rule[] = [];
  const problems: string[] = [];
  for (const rawEntry of entries) {
    const entry = rawEntry.trim();
    const slash = entry.indexOf("/");
    const addressText = slash < 0 ? entry : entry.slice(0, slash);
    const address = parseIpAddress(addressText);
    if (address === undefined) {
      problems.push(`Ignoring network "${entry}": not an IP prefix (a.b.c.d/n or x:y::/n)`);
      continue;
    }
    const maxLength = address.ipv4 ? 32 : 128;
    let length = maxLength;
    if (slash < 0) {
      problems.push(
        `Network "${entry}" has no prefix length: taken as the single host ` +
          `${entry}/${maxLength}`,
      );
    } else {
      const lengthText = entry.slice(slash + 1);
      length = PREFIX_LENGTH_REGEXP.test(lengthText) ? Number(lengthText) : -1;
      if (length < 0 || length > maxLength) {
        problems.push(
          `Ignoring network "${entry}": prefix length must be 0 to ${maxLength}`,
        );
        continue;
      }
    }
    // IPv4 prefixes are held in the mapped range: /n becomes /(96 + n).
    const bits = address.ipv4 ? 96 + length : length;
    const mask = ALL_ONES ^ ((1n << BigInt(128 - bits)) - 1n);
    rules.push({ network: address.value & mask, mask, ipv4: address.ipv4 });
  }
  return {
    matches: (address: string) => matchesAny(rules, address),
    problems,
    size: rules.length,
    isEmpty: entries.length === 0,
  };
}

/**
 * Reduces a peer address to its IP (ACL-1): `[v6]:port`, `[v6]`, `v4:port`, bare `v4` or `v6`;
 * an IPv6 zone (`%eth0`) is dropped. Returns `undefined` when it is not an IP.
 */
function parsePeerAddress(address: string): IpAddress | undefined {
  let host = address;
  if (host.startsWith("[")) {
    const close = host.indexOf("]");
    if (close < 0) return undefined;
    const rest = host.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) return undefined;
    host = host.slice(1, close);
  } else {
    const firstColon = host.indexOf(":");
    if (firstColon >= 0 && firstColon === host.lastIndexOf(":")) host = host.slice(0, firstColon);
  }
  const percent = host.indexOf("%");
  if (percent >= 0 && host.includes(":")) host = host.slice(0, percent);
  return parseIpAddress(host);
}

/** Whether the peer address falls in one of the rules. */
function matchesAny(rules: readonly Rule[], address: string): boolean {
  const peer = parsePeerAddress(address);
  if (peer === undefined) return false;
  for (const rule of rules) {
    if (!rule.ipv4 && peer.ipv4) continue;
    if ((peer.value & rule.mask) === rule.network) return true;
  }
  return false;
}

/** Parses an IPv4 or IPv6 address (no zone, no brackets), or returns `undefined`. */
function parseIpAddress(text: string): IpAddress | undefined {
  if (text.includes(":")) {
    const value = parseIpv6(text);
    return value === undefined ? undefined : { value, ipv4: false };
  }
  const value = parseIpv4(text);
  return value === undefined ? undefined : { value: IPV4_MAPPED_PREFIX | value, ipv4: true };
}

/** Parses a dotted-quad IPv4 address into a 32-bit number. */
function parseIpv4(text: string): bigint | undefined {
  if (!IPV4_REGEXP.test(text)) return undefined;
  let value = 0n;
  for (const part of text.split(".")) {
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

/**
 * Parses IPv6 text (RFC 4291 §2.2: groups, at most one `::`, an optional trailing dotted IPv4)
 * into a 128-bit number. As in Go's netip, `::` must stand for at least one group.
 */
function parseIpv6(text: string): bigint | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const compressed = halves.length === 2;
  const head = parseIpv6Groups(halves[0] ?? "", !compressed);
  const tail = compressed ? parseIpv6Groups(halves[1] ?? "", true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const count = head.length + tail.length;
  if (compressed ? count > 7 : count !== 8) return undefined;
  const groups = [...head, ...new Array<number>(8 - count).fill(0), ...tail];
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(group);
  return value;
}

/**
 * Parses `a:b:c` (possibly empty) into 16-bit groups; when `allowIpv4`, the last part may be a
 * dotted IPv4 address, which yields two groups.
 */
function parseIpv6Groups(text: string, allowIpv4: boolean): number[] | undefined {
  if (text === "") return [];
  const parts = text.split(":");
  const groups: number[] = [];
  for (const [index, part] of parts.entries()) {
    if (IPV6_GROUP_REGEXP.test(part)) {
      groups.push(Number.parseInt(part, 16));
      continue;
    }
    const ipv4 = allowIpv4 && index === parts.length - 1 ? parseIpv4(part) : undefined;
    if (ipv4 === undefined) return undefined;
    groups.push(Number(ipv4 >> 16n), Number(ipv4 & 0xffffn));
  }
  return groups;
}
