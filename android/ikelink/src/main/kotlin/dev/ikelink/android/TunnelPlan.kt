package dev.ikelink.android

import java.math.BigInteger
import java.net.InetAddress
import uniffi.ikelink_ffi.IpPrefix
import uniffi.ikelink_ffi.TunnelSettings

/** What to do with an address family the gateway assigned no address for (IPv6 in an IPv4 tunnel, or IPv4). */
enum class UnassignedFamily {
    /**
     * Like strongSwan's app: in a full tunnel (a default route of the other family) block it, so nothing leaves
     * outside the VPN; in a split tunnel let it bypass the VPN (`allowFamily`), as the split tunnel does for the
     * other family's unrouted destinations. The profile's `tunnel.kill_switch` always blocks.
     */
    AUTO,
    /** Always block it: route it into the tunnel, where Ikelink drops it (no Child SA covers it). */
    BLOCK,
    /** Always let it bypass the VPN (`allowFamily`). */
    ALLOW,
}

/**
 * How the negotiated [TunnelSettings] become `VpnService.Builder` calls (pure logic, tested on the JVM):
 * addresses, routes (excluded prefixes subtracted before Android 13), the unassigned family, metering.
 */
internal data class TunnelPlan(
    val addresses: List<IpPrefix>,
    val routes: List<IpPrefix>,
    /** `Builder.excludeRoute` (API 33+); empty before, when [routes] already leave them out. */
    val excludeRoutes: List<IpPrefix>,
    /** `allowFamily(AF_INET)` / `allowFamily(AF_INET6)`: let that family bypass the VPN. */
    val allowIpv4: Boolean,
    val allowIpv6: Boolean,
    /** `setMetered(false)` (API 29+): the VPN is as metered as the networks under it, not always metered. */
    val notMetered: Boolean,
) {
    companion object {
        /** A unique local address of our own, so the system accepts the blocking IPv6 default route. */
        const val BLOCK_IPV6_ADDRESS = "fd00::fd02:1:1"
        /** The same for IPv4 (as strongSwan's app). */
        const val BLOCK_IPV4_ADDRESS = "172.16.252.1"

        fun of(settings: TunnelSettings, sdk: Int, unassigned: UnassignedFamily, killSwitch: Boolean): TunnelPlan {
            val addresses = mutableListOf<IpPrefix>()
            settings.ipv4?.let { addresses += it }
            settings.ipv6?.let { addresses += it }
            var routes = settings.routes.map { Prefix.parse(it) }
            val full4 = routes.any { !it.v6 && it.length == 0 }
            val full6 = routes.any { it.v6 && it.length == 0 }
            // A family without an address: block it (a local address and its default route into the tunnel),
            // or let it bypass the VPN.
            fun block(otherFull: Boolean) = killSwitch || when (unassigned) {
                UnassignedFamily.BLOCK -> true
                UnassignedFamily.ALLOW -> false
                UnassignedFamily.AUTO -> otherFull
            }
            var allowIpv4 = false
            var allowIpv6 = false
            if (settings.ipv6 == null && settings.ipv4 != null) {
                if (block(full4)) {
                    addresses += IpPrefix(BLOCK_IPV6_ADDRESS, 128u)
                    routes = routes + Prefix.parse("::", 0)
                } else {
                    allowIpv6 = true
                }
            }
            if (settings.ipv4 == null && settings.ipv6 != null) {
                if (block(full6)) {
                    addresses += IpPrefix(BLOCK_IPV4_ADDRESS, 32u)
                    routes = routes + Prefix.parse("0.0.0.0", 0)
                } else {
                    allowIpv4 = true
                }
            }
            val excluded = settings.excludedRoutes.map { Prefix.parse(it) }
            val native = sdk >= 33
            if (!native) routes = Prefix.subtract(routes, excluded)
            return TunnelPlan(
                addresses = addresses,
                routes = routes.map { it.toIpPrefix() },
                excludeRoutes = if (native) excluded.map { it.toIpPrefix() } else emptyList(),
                allowIpv4 = allowIpv4,
                allowIpv6 = allowIpv6,
                notMetered = sdk >= 29,
            )
        }
    }
}

/** An IPv4 or IPv6 prefix as a number, for route arithmetic. */
internal data class Prefix(val v6: Boolean, val network: BigInteger, val length: Int) {
    private val bits get() = if (v6) 128 else 32

    fun contains(other: Prefix): Boolean =
        v6 == other.v6 && length <= other.length && other.network.shiftRight(bits - length) == network.shiftRight(bits - length)

    /** The two halves, one bit longer. */
    fun split(): Pair<Prefix, Prefix> =
        Prefix(v6, network, length + 1) to Prefix(v6, network.setBit(bits - length - 1), length + 1)

    fun toIpPrefix(): IpPrefix {
        val bytes = network.toByteArray().let { raw ->
            val n = bits / 8
            ByteArray(n) { i -> raw.getOrElse(raw.size - n + i) { 0 } }
        }
        return IpPrefix(InetAddress.getByAddress(bytes).hostAddress!!, length.toUByte())
    }

    override fun toString() = "${toIpPrefix().address}/$length"

    companion object {
        fun parse(p: IpPrefix): Prefix = parse(p.address, p.prefixLength.toInt())

        /** [address] must be a literal (never looked up); host bits are cleared. */
        fun parse(address: String, length: Int): Prefix {
            require(address.isNotEmpty() && (address.contains(':') || address.all { it.isDigit() || it == '.' })) {
                "not an IP address: $address"
            }
            val bytes = InetAddress.getByName(address).address
            val bits = bytes.size * 8
            require(length in 0..bits) { "bad prefix length /$length for $address" }
            val value = BigInteger(1, bytes)
            val mask = if (length == 0) BigInteger.ZERO else BigInteger.ONE.shiftLeft(length).subtract(BigInteger.ONE).shiftLeft(bits - length)
            return Prefix(bytes.size == 16, value.and(mask), length)
        }

        /**
         * [include] minus [exclude]: the smallest set of prefixes covering exactly the included addresses that
         * no excluded prefix covers (per family). E.g. 0.0.0.0/0 minus 10.0.0.0/8 is 0.0.0.0/5, 8.0.0.0/7,
         * 11.0.0.0/8, 12.0.0.0/6, 16.0.0.0/4, 32.0.0.0/3, 64.0.0.0/2, 128.0.0.0/1.
         */
        fun subtract(include: List<Prefix>, exclude: List<Prefix>): List<Prefix> {
            var result = include.distinct()
            for (e in exclude) {
                result = result.flatMap { minus(it, e) }
            }
            return result
        }

        private fun minus(p: Prefix, e: Prefix): List<Prefix> = when {
            e.contains(p) -> emptyList()
            !p.contains(e) -> listOf(p)
            else -> {
                // Walk from p down to e; keep the sibling half at each step.
                val out = mutableListOf<Prefix>()
                var cur = p
                while (cur.length < e.length) {
                    val (a, b) = cur.split()
                    if (a.contains(e)) {
                        out += b
                        cur = a
                    } else {
                        out += a
                        cur = b
                    }
                }
                out
            }
        }
    }
}
