package dev.ikelink.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test
import uniffi.ikelink_ffi.IpPrefix
import uniffi.ikelink_ffi.TunnelSettings

/** Builder plans: route arithmetic for excluded prefixes before Android 13, the unassigned family, metering. */
class TunnelPlanTest {
    private fun p(s: String): IpPrefix = s.split('/').let { IpPrefix(it[0], it[1].toUByte()) }
    private fun strs(l: List<IpPrefix>) = l.map { "${it.address}/${it.prefixLength}" }
    private fun prefixes(vararg s: String) = s.map { Prefix.parse(p(it)) }

    private fun settings(
        routes: List<String>,
        ipv4: String? = "10.3.0.2/32",
        ipv6: String? = null,
        exclude: List<String> = emptyList(),
    ) = TunnelSettings(
        ipv4?.let(::p), ipv6?.let(::p), 1400u, routes.map(::p), listOf("10.3.0.53"), emptyList(), "192.0.2.1",
        exclude.map(::p),
    )

    @Test
    fun subtractsIpv4Prefixes() {
        val out = Prefix.subtract(prefixes("0.0.0.0/0"), prefixes("10.0.0.0/8")).map { it.toString() }
        assertEquals(
            listOf("128.0.0.0/1", "64.0.0.0/2", "32.0.0.0/3", "16.0.0.0/4", "0.0.0.0/5", "12.0.0.0/6", "8.0.0.0/7",
                "11.0.0.0/8"),
            out,
        )
        // Not overlapping: unchanged; covering: gone; host bits of the input are cleared.
        assertEquals(listOf("192.168.0.0/16"), Prefix.subtract(prefixes("192.168.1.7/16"), prefixes("10.0.0.0/8")).map { it.toString() })
        assertEquals(emptyList<String>(), Prefix.subtract(prefixes("10.1.0.0/16"), prefixes("10.0.0.0/8")).map { it.toString() })
        // Two exclusions inside one route, and a /32: every other address is covered exactly once.
        val two = Prefix.subtract(prefixes("10.0.0.0/8"), prefixes("10.1.0.0/16", "10.2.3.4/32"))
        // 10.0.0.0/8 - 10.1.0.0/16: 8 prefixes (/9../16); 10.2.3.4 lies in 10.2.0.0/15, which becomes 17.
        assertEquals(8 - 1 + 17, two.size)
        for (addr in listOf("10.1.2.3", "10.2.3.4")) assertFalse(two.any { it.contains(Prefix.parse(addr, 32)) })
        for (addr in listOf("10.0.0.1", "10.2.3.5", "10.255.255.255", "10.3.0.0")) {
            assertEquals(addr, 1, two.count { it.contains(Prefix.parse(addr, 32)) })
        }
    }

    @Test
    fun subtractsIpv6PrefixesAndKeepsFamiliesApart() {
        val out = Prefix.subtract(prefixes("::/0", "0.0.0.0/0"), prefixes("2001:db8::/32", "fe80::/10"))
        val v6 = out.filter { it.v6 }
        assertTrue(out.contains(Prefix.parse("0.0.0.0", 0)))
        for (a in listOf("2001:db8::1", "2001:db8:ffff::", "fe80::1")) assertFalse(v6.any { it.contains(Prefix.parse(a, 128)) })
        for (a in listOf("2001:db9::1", "::1", "2a00::1", "fec0::1", "ffff::1")) {
            assertEquals(a, 1, v6.count { it.contains(Prefix.parse(a, 128)) })
        }
        assertEquals("2001:db8:0:0:0:0:0:0/32", Prefix.parse("2001:db8::ff", 32).toString())
    }

    @Test
    fun excludedRoutesBySdk() {
        val s = settings(listOf("0.0.0.0/0"), exclude = listOf("192.168.0.0/16"))
        val new = TunnelPlan.of(s, 33, UnassignedFamily.ALLOW, killSwitch = false)
        assertEquals(listOf("0.0.0.0/0"), strs(new.routes))
        assertEquals(listOf("192.168.0.0/16"), strs(new.excludeRoutes))
        val old = TunnelPlan.of(s, 32, UnassignedFamily.ALLOW, killSwitch = false)
        assertEquals(emptyList<String>(), strs(old.excludeRoutes))
        assertEquals(16, old.routes.size)
        assertFalse(old.routes.map { Prefix.parse(it) }.any { it.contains(Prefix.parse("192.168.4.4", 32)) })
    }

    @Test
    fun unassignedIpv6IsBlockedInAFullTunnelAndBypassesASplitOne() {
        val full = TunnelPlan.of(settings(listOf("0.0.0.0/0")), 34, UnassignedFamily.AUTO, killSwitch = false)
        assertTrue(strs(full.routes).contains("0:0:0:0:0:0:0:0/0")) // Java's long form; the Builder takes it
        assertTrue(strs(full.addresses).contains("fd00::fd02:1:1/128"))
        assertFalse(full.allowIpv6)
        val split = TunnelPlan.of(settings(listOf("10.0.0.0/8")), 34, UnassignedFamily.AUTO, killSwitch = false)
        assertTrue(split.allowIpv6)
        assertEquals(listOf("10.0.0.0/8"), strs(split.routes))
        // The kill switch and BLOCK block it in a split tunnel too; ALLOW lets it bypass a full one.
        assertFalse(TunnelPlan.of(settings(listOf("10.0.0.0/8")), 34, UnassignedFamily.AUTO, killSwitch = true).allowIpv6)
        assertFalse(TunnelPlan.of(settings(listOf("10.0.0.0/8")), 34, UnassignedFamily.BLOCK, killSwitch = false).allowIpv6)
        assertTrue(TunnelPlan.of(settings(listOf("0.0.0.0/0")), 34, UnassignedFamily.ALLOW, killSwitch = false).allowIpv6)
        // An address of the family: nothing to decide.
        val dual = TunnelPlan.of(settings(listOf("0.0.0.0/0", "::/0"), ipv6 = "2001:db8::2/128"), 34, UnassignedFamily.AUTO, false)
        assertFalse(dual.allowIpv6 || dual.allowIpv4)
        assertEquals(listOf("10.3.0.2/32", "2001:db8::2/128"), strs(dual.addresses))
        // IPv6-only split tunnel: IPv4 bypasses.
        val v6only = TunnelPlan.of(settings(listOf("2001:db8::/32"), ipv4 = null, ipv6 = "2001:db8::2/128"), 34, UnassignedFamily.AUTO, false)
        assertTrue(v6only.allowIpv4)
    }

    @Test
    fun notMeteredFromAndroid10() {
        assertFalse(TunnelPlan.of(settings(listOf("0.0.0.0/0")), 28, UnassignedFamily.AUTO, false).notMetered)
        assertTrue(TunnelPlan.of(settings(listOf("0.0.0.0/0")), 29, UnassignedFamily.AUTO, false).notMetered)
    }
}
