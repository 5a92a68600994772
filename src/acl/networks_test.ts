/**
 * Tests of CIDR lists (ACL-1, ACL-2, SRV-6, SRV-9, PROTO-7 row 5), with the deliberate fixes:
 * bare IPs as single hosts with a warning, reported invalid entries, IPv4-mapped IPv6 peers.
 * @module
 */

import assert from "node:assert/strict";
import { compileNetworks } from "./networks.ts";

/** Each row: entries, peer address, expected match. */
const MATCH_TABLE: [string[], string, boolean][] = [
  // ACL-1: IPv4 prefixes, host bits allowed, port stripped.
  [["10.0.0.0/8"], "10.1.2.3", true],
  [["10.0.0.0/8"], "10.1.2.3:51234", true],
  [["10.0.0.0/8"], "11.1.2.3:51234", false],
  [["10.1.2.3/8"], "10.200.0.1:1", true],
  [["192.168.1.0/24"], "192.168.1.255:80", true],
  [["192.168.1.0/24"], "192.168.2.0:80", false],
  [["192.168.1.7/32"], "192.168.1.7:80", true],
  [["192.168.1.7/32"], "192.168.1.8:80", false],
  [["0.0.0.0/0"], "203.0.113.9:443", true],
  [["0.0.0.0/0"], "[2001:db8::1]:443", false], // /0 covers its own family only
  [["255.255.255.255/32"], "255.255.255.255", true],
  // IPv6 prefixes, brackets and ports, zones.
  [["2001:db8::/32"], "[2001:db8:1::5]:443", true],
  [["2001:db8::/32"], "2001:db8:1::5", true],
  [["2001:db8::/32"], "[2001:db8:1::5]", true],
  [["2001:db8::/32"], "[2001:db9::5]:443", false],
  [["::1/128"], "[::1]:8080", true],
  [["::1/128"], "[::2]:8080", false],
  [["::/0"], "[2001:db8::1]:1", true],
  [["::/0"], "127.0.0.1:1", false], // /0 covers its own family only
  [["fe80::/10"], "[fe80::1%eth0]:22", true],
  [["2001:db8::1/64"], "[2001:db8::ffff:1]:1", true], // host bits allowed
  [["2001:db8:0:0:0:0:0:0/126"], "[2001:db8::3]:1", true],
  [["2001:db8:0:0:0:0:0:0/126"], "[2001:db8::4]:1", false],
  // IPv4-mapped IPv6 peers match IPv4 prefixes (deliberate fix: dual-stack listeners).
  [["127.0.0.0/8"], "[::ffff:127.0.0.1]:4000", true],
  [["127.0.0.0/8"], "::ffff:127.0.0.1", true],
  [["127.0.0.0/8"], "[::ffff:7f00:1]:4000", true],
  [["127.0.0.0/8"], "[::ffff:10.0.0.1]:4000", false],
  [["0.0.0.0/0"], "[::ffff:8.8.8.8]:53", true],
  [["::ffff:0:0/96"], "[::ffff:8.8.8.8]:53", true],
  [["::ffff:0:0/96"], "8.8.8.8:53", false], // an IPv6 prefix never matches an IPv4 peer
  [["::/0"], "[::ffff:8.8.8.8]:53", true],
  // ACL-2: any entry may match; order does not change the answer.
  [["10.0.0.0/8", "192.168.0.0/16"], "192.168.3.4:1", true],
  [["192.168.0.0/16", "10.0.0.0/8"], "10.3.4.5:1", true],
  [["192.168.0.0/16", "::1/128"], "[::1]:1", true],
  // Peers that are not IP addresses match nothing.
  [["0.0.0.0/0", "::/0"], "localhost:80", false],
  [["0.0.0.0/0", "::/0"], "", false],
  [["0.0.0.0/0", "::/0"], "[::1", false],
  [["0.0.0.0/0", "::/0"], "[::1]x", false],
  [["0.0.0.0/0", "::/0"], "1.2.3.4.5", false],
  [["0.0.0.0/0", "::/0"], "1.2.3.256:80", false],
];

Deno.test("compileNetworks().matches() reduces ip:port to the IP and tests prefixes (ACL-1, ACL-2)", () => {
  assert.equal(MATCH_TABLE.length, 40);
  for (const [entries, peer, expected] of MATCH_TABLE) {
    const list = compileNetworks(entries);
    assert.deepEqual(list.problems, [], entries.join(", "));
    assert.equal(list.matches(peer), expected, `${entries.join(", ")} ∋ ${peer}`);
  }
});

Deno.test("compileNetworks() takes a bare IP as a single host and warns (ACL-1, deliberate fix)", () => {
  const list = compileNetworks(["10.1.2.3", " 2001:db8::7 "]);
  assert.equal(list.size, 2);
  assert.deepEqual(list.problems, [
    'Network "10.1.2.3" has no prefix length: taken as the single host 10.1.2.3/32',
    'Network "2001:db8::7" has no prefix length: taken as the single host 2001:db8::7/128',
  ]);
  assert.equal(list.matches("10.1.2.3:80"), true);
  assert.equal(list.matches("10.1.2.4:80"), false);
  assert.equal(list.matches("[::ffff:10.1.2.3]:80"), true);
  assert.equal(list.matches("[2001:db8::7]:80"), true);
  assert.equal(list.matches("[2001:db8::8]:80"), false);
});

Deno.test("compileNetworks() reports invalid entries and ignores them (ACL-1)", () => {
  const invalid = [
    "",
    "10.0.0.0/33",
    "::/129",
    "10.0.0.0/",
    "10.0.0.0/08",
    "10.0.0.0/-1",
    "10.0.0.0/8/8",
    "10.0.0/8",
    "010.0.0.0/8",
    "256.0.0.0/8",
    "10.0.0.0.0/8",
    "example.com/24",
    "localhost",
    "1:2:3:4:5:6:7:8:9/64",
    "1:2:3:4:5:6:7/64",
    "1:2:3:4:5:6:7:8::/64",
    "1::2::3/64",
    "12345::/16",
    ":1::/16",
    "1.2.3.4::/64",
    "fe80::1%eth0/64",
    "[::1]/128",
  ];
  const list = compileNetworks([...invalid, "10.0.0.0/8"]);
  assert.equal(list.size, 1);
  assert.equal(list.problems.length, invalid.length);
  for (const [index, entry] of invalid.entries()) {
    assert.match(list.problems[index] ?? "", /^Ignoring network "/, entry);
    assert.ok(list.problems[index]?.includes(`"${entry}"`), entry);
  }
  assert.equal(list.problems[1], 'Ignoring network "10.0.0.0/33": prefix length must be 0 to 32');
  assert.equal(
    list.problems[11],
    'Ignoring network "example.com/24": not an IP prefix (a.b.c.d/n or x:y::/n)',
  );
  assert.equal(list.matches("10.9.9.9:1"), true);
  assert.equal(list.matches("11.9.9.9:1"), false);
});

Deno.test("compileNetworks() accepts the IPv6 text forms of RFC 4291 (ACL-1)", () => {
  const valid = [
    "::/0",
    "::1/128",
    "1::/16",
    "1:2:3:4:5:6:7::/64",
    "::2:3:4:5:6:7:8/64",
    "1:2:3:4:5:6:7:8/64",
    "::ffff:1.2.3.4/128",
    "64:ff9b::192.0.2.33/96",
    "1:2:3:4:5:6:1.2.3.4/128",
    "ABCD:ef01::/32",
  ];
  const list = compileNetworks(valid);
  assert.deepEqual(list.problems, []);
  assert.equal(list.size, valid.length);
  assert.equal(compileNetworks(["64:ff9b::192.0.2.33/128"]).matches("[64:ff9b::c000:221]:1"), true);
  assert.equal(compileNetworks(["1:2:3:4:5:6:1.2.3.4/128"]).matches("1:2:3:4:5:6:102:304"), true);
});

Deno.test("compileNetworks() leaves the empty-list default to the caller (ACL-1)", () => {
  const empty = compileNetworks([]);
  assert.equal(empty.isEmpty, true);
  assert.equal(empty.size, 0);
  assert.equal(empty.matches("10.0.0.1:1"), false);
  // A list whose entries are all invalid is not empty: it fails closed.
  const broken = compileNetworks(["nonsense"]);
  assert.equal(broken.isEmpty, false);
  assert.equal(broken.size, 0);
  assert.equal(broken.matches("10.0.0.1:1"), false);
});
