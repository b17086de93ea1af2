import { BlockList, isIP } from 'node:net';

// Allowed client networks for /metrics: single addresses or CIDR blocks,
// IPv4 or IPv6.

/** Parses "10.0.0.0/8", "::1" or "192.0.2.7"; returns null when the text is neither an address nor a CIDR block. */
export function parseNetwork(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const [address = '', prefixText, extra] = text.trim().split('/');
  if (extra !== undefined) return null;
  const version = isIP(address);
  if (version === 0) return null;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const maxPrefix = version === 4 ? 32 : 128;
  if (prefixText === undefined) return { address, prefix: maxPrefix, family };
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) return null;
  return { address, prefix: Number(prefixText), family };
}

/** Builds a matcher from entries already checked by parseNetwork. */
export function createAllowList(entries: readonly string[]): (remoteAddress: string | undefined) => boolean {
  const list = new BlockList();
  for (const entry of entries) {
    const network = parseNetwork(entry);
    if (network) list.addSubnet(network.address, network.prefix, network.family);
  }
  return (remoteAddress) => {
    if (!remoteAddress) return false;
    // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress);
    const address = mapped?.[1] ?? remoteAddress;
    const version = isIP(address);
    if (version === 0) return false;
    return list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  };
}
