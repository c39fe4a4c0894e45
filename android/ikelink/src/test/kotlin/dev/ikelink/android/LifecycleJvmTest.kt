package dev.ikelink.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.net.InetAddress
import uniffi.ikelink_ffi.CallbackException
import uniffi.ikelink_ffi.TunnelState
import uniffi.ikelink_ffi.VpnEvent
import uniffi.ikelink_ffi.VpnException

/** Ikelink's name lookups on the underlying network. */
class LifecycleJvmTest {
    @Test
    fun lookupsUseTheUnderlyingNetwork() {
        val asked = mutableListOf<String>()
        var underlying: String? = null
        val addr = { a: String -> arrayOf(InetAddress.getByName(a)) }
        val r = UnderlyingResolver(
            underlying = { underlying },
            onNetwork = { n, host -> asked += "$n:$host"; if (host == "gw.test") addr("203.0.113.7") else emptyArray() },
            system = { host -> asked += "system:$host"; addr("198.51.100.1") },
        )
        // Before the monitor knows a network (the first lookup, before the tunnel is up): the default network.
        assertEquals(listOf("198.51.100.1"), r.resolve("gw.test"))
        underlying = "wifi"
        assertEquals(listOf("203.0.113.7"), r.resolve("gw.test"))
        try {
            r.resolve("none.test")
            fail("a name without addresses is an error")
        } catch (e: CallbackException.Failed) {
            assertTrue(e.reason.contains("none.test"))
        }
        assertEquals(listOf("system:gw.test", "wifi:gw.test", "wifi:none.test"), asked)
    }
}
