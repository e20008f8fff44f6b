import net from "node:net";

import ipaddr from "ipaddr.js";

// The egress proxy's default address policy: a destination must be a public unicast address.
// The ranges are those of the IANA special-purpose address registries (RFC 6890, updated by
// RFC 8190), as classified by ipaddr.js, plus a rule that IPv6 must lie in 2000::/3.

/** What {@link classifyAddress} decided about one IP address. */
export type AddressVerdict =
  | { allowed: true; address: string }
  | {
      allowed: false;
      address: string;
      /** Why, in a few words: `loopback`, `link-local`, `IPv4-mapped 127.0.0.1: loopback`, … */
      reason: string;
    };

/** Words for ipaddr.js's range names. */
const RANGE_WORDS: Readonly<Record<string, string>> = {
  unspecified: "unspecified",
  broadcast: "broadcast",
  multicast: "multicast",
  linkLocal: "link-local",
  loopback: "loopback",
  carrierGradeNat: "carrier-grade NAT",
  private: "private",
  reserved: "reserved",
  benchmarking: "benchmarking",
  amt: "AMT relay",
  as112: "AS112",
  as112v6: "AS112",
  uniqueLocal: "unique local",
  deprecatedSiteLocal: "site-local",
  discard: "discard-only",
  deprecatedOrchid: "ORCHID",
  orchid2: "ORCHIDv2",
  droneRemoteIdProtocolEntityTags: "drone remote ID",
  segmentRouting: "segment routing",
};

/** IPv6 global unicast (RFC 4291 §2.4): everything else is special or unassigned. */
const IPV6_GLOBAL_UNICAST = ipaddr.IPv6.parseCIDR("2000::/3");
/** The well-known NAT64 prefix (RFC 6052 §2.1); the IPv4 address is the last 32 bits. */
const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR("64:ff9b::/96");

/**
 * An IP address in canonical form: IPv4 as given (a dotted quad), IPv6 in the compressed
 * lower-case hexadecimal form of RFC 5952, with any dotted-quad tail rewritten as hex
 * (`::127.0.0.1` → `::7f00:1`, `::ffff:127.0.0.1` → `::ffff:7f00:1`). `null` when `address`
 * is not an IP address or carries a zone (`%eth0`).
 *
 * The WHATWG URL parser does the IPv6 work: it reads addresses as `inet_pton` does, whereas
 * ipaddr.js 2.x reads `::a.b.c.d` as `::ffff:a.b.c.d`.
 */
export function canonicalAddress(address: string): string | null {
  const kind = net.isIP(address);
  if (kind === 0 || address.includes("%")) return null;
  if (kind === 4) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
}

function refuse(address: string, reason: string): AddressVerdict {
  return { allowed: false, address, reason };
}

function words(range: string): string {
  return RANGE_WORDS[range] ?? range;
}

function ipv4FromParts(high: number, low: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
}

/** `null` when the IPv4 address is public unicast, else why not. */
function ipv4Problem(v4: ipaddr.IPv4): string | null {
  const range = v4.range();
  return range === "unicast" ? null : words(range);
}

/** An IPv6 form that carries an IPv4 address is judged by that address (every one, for Teredo). */
function embedded(address: string, form: string, v4s: ipaddr.IPv4[]): AddressVerdict {
  for (const v4 of v4s) {
    const problem = ipv4Problem(v4);
    if (problem) return refuse(address, `${form} ${v4.toString()}: ${problem}`);
  }
  return { allowed: true, address };
}

/**
 * Decides whether the egress proxy may connect to `address`: only public unicast addresses
 * pass. Refused, with the reason given:
 *
 * - IPv4 (RFC 6890 and the IANA IPv4 special-purpose registry): unspecified `0.0.0.0/8`,
 *   loopback `127.0.0.0/8`, link-local `169.254.0.0/16` (RFC 3927; includes the cloud
 *   metadata address `169.254.169.254`), private `10/8`, `172.16/12`, `192.168/16`
 *   (RFC 1918), carrier-grade NAT `100.64.0.0/10` (RFC 6598), multicast `224/4`, broadcast
 *   `255.255.255.255`, reserved `240/4`, documentation and benchmarking nets (RFC 5737,
 *   RFC 2544), IETF protocol assignments `192.0.0.0/24`, the old 6to4 relay `192.88.99.0/24`,
 *   AS112 and AMT.
 * - IPv6 (RFC 6890, RFC 4291): anything outside global unicast `2000::/3` — unspecified `::`,
 *   loopback `::1`, IPv4-compatible `::a.b.c.d`, link-local `fe80::/10`, site-local
 *   `fec0::/10`, unique local `fc00::/7` (RFC 4193), multicast `ff00::/8`, discard `100::/64` —
 *   and the special blocks inside it: `2001::/23` (IETF protocol assignments), documentation
 *   `2001:db8::/32` and `3fff::/20`, benchmarking, ORCHID, AS112, AMT.
 * - IPv6 forms that embed an IPv4 address are judged by the embedded address: IPv4-mapped
 *   `::ffff:a.b.c.d` (RFC 4291), IPv4-translated `::ffff:0:a.b.c.d` (RFC 6145), NAT64
 *   `64:ff9b::a.b.c.d` (RFC 6052), 6to4 `2002:AABB:CCDD::/48` (RFC 3056) and Teredo
 *   `2001:0::/32` (RFC 4380; server and client address). The local-use NAT64 prefix
 *   `64:ff9b:1::/48` (RFC 8215), whose layout the operator chooses, is refused outright.
 * - Scoped addresses (`%zone`) and anything that is not an IP address.
 *
 * @param address - an IPv4 dotted quad or an IPv6 address, as `dns.lookup` returns them
 */
export function classifyAddress(address: string): AddressVerdict {
  const kind = net.isIP(address);
  if (kind === 0) return refuse(address, "not an IP address");
  if (address.includes("%")) return refuse(address, "scoped address");
  if (kind === 4) {
    const problem = ipv4Problem(ipaddr.IPv4.parse(address));
    return problem ? refuse(address, problem) : { allowed: true, address };
  }
  const canonical = canonicalAddress(address);
  if (canonical === null) return refuse(address, "not an IP address");
  const v6 = ipaddr.IPv6.parse(canonical);
  const range = v6.range();
  const parts = v6.parts;
  const last32 = (): ipaddr.IPv4 => ipv4FromParts(parts[6] ?? 0, parts[7] ?? 0);
  switch (range) {
    case "ipv4Mapped":
      return embedded(address, "IPv4-mapped", [last32()]);
    case "rfc6145":
      return embedded(address, "IPv4-translated", [last32()]);
    case "rfc6052":
      if (!v6.match(NAT64_WELL_KNOWN)) return refuse(address, "local-use NAT64 prefix");
      return embedded(address, "NAT64", [last32()]);
    case "6to4":
      return embedded(address, "6to4", [ipv4FromParts(parts[1] ?? 0, parts[2] ?? 0)]);
    case "teredo":
      // Server address in bits 32–63; client address, bit-inverted, in bits 96–127 (RFC 4380 §4).
      return embedded(address, "Teredo", [ipv4FromParts(parts[2] ?? 0, parts[3] ?? 0), ipv4FromParts(~(parts[6] ?? 0) & 0xffff, ~(parts[7] ?? 0) & 0xffff)]);
    case "unicast":
      return v6.match(IPV6_GLOBAL_UNICAST) ? { allowed: true, address } : refuse(address, "not global unicast");
    default:
      return refuse(address, words(range));
  }
}
