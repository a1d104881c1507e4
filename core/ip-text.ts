/**
 * IPv6 text form (RFC 5952): the one place that shortens eight 16-bit groups, shared by the kernel layer
 * (addresses from netlink) and the IPAM service (addresses as bigints), which may not import each other.
 */

/** `groups`: the eight 16-bit groups, most significant first. */
export function formatIpv6Groups(groups: readonly number[]): string {
  // Section 5: IPv4-mapped addresses keep their dotted tail.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const tail = [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff];
    return `::ffff:${tail.join('.')}`;
  }
  // Section 4.2: the longest run of two or more zero groups (the first of equals) becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
