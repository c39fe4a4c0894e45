package dev.ikelink.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import uniffi.ikelink_ffi.TunnelState
import uniffi.ikelink_ffi.VpnEvent
import uniffi.ikelink_ffi.VpnException

/** Lookups while reconnecting, and the kill switch's refusal. */
class LifecycleJvmTest {
    @Test
    fun lookupsUseTheUnderlyingNetworkOnlyWhileReconnecting() {
        val calls = mutableListOf<String?>()
        var underlying: String? = "wifi"
        val dns = ReconnectDns(underlying = { underlying }) { n -> calls += n; true }
        dns.onEvent(VpnEvent.StateChanged(TunnelState.CONNECTING))
        assertEquals(emptyList<String?>(), calls)
        val reason = VpnException.Unreachable("dpd")
        dns.onEvent(VpnEvent.Reconnecting(1u, 0uL, reason))
        dns.onEvent(VpnEvent.Reconnecting(2u, 1000uL, reason)) // same network: bound once
        assertEquals(listOf<String?>("wifi"), calls)
        underlying = "mobile"
        dns.onEvent(VpnEvent.Reconnecting(3u, 2000uL, reason)) // moved: bound to the new one
        dns.onEvent(VpnEvent.StateChanged(TunnelState.CONNECTED))
        assertEquals(listOf<String?>("wifi", "mobile", null), calls)
        dns.onEvent(VpnEvent.Closed(null)) // nothing bound: nothing to undo
        assertEquals(3, calls.size)
        underlying = null
        dns.onEvent(VpnEvent.Reconnecting(1u, 0uL, reason)) // no underlying network: leave the process as is
        assertEquals(3, calls.size)
        underlying = "wifi"
        dns.onEvent(VpnEvent.Reconnecting(1u, 0uL, reason))
        dns.onEvent(VpnEvent.Closed(reason))
        assertEquals(listOf<String?>("wifi", "mobile", null, "wifi", null), calls)
    }
}
