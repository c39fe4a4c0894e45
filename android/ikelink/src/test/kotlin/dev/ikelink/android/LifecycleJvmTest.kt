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

    @Test
    fun killSwitchIsReadFromTheProfile() {
        assertTrue(KillSwitch.requested("[gateway]\naddress = \"vpn\"\n[tunnel]\nkill_switch = true # always\n"))
        assertFalse(KillSwitch.requested("[tunnel]\nkill_switch = false\n"))
        assertFalse(KillSwitch.requested("[gateway]\nkill_switch = true\n")) // another table's key
        assertFalse(KillSwitch.requested("[tunnel]\n# kill_switch = true\n"))
        assertTrue(KillSwitch.requested("tunnel.kill_switch = true\n[gateway]\naddress = \"vpn\"\n"))
        assertTrue(KillSwitch.requested("tunnel = { dns = true, kill_switch = true }\n"))
        assertFalse(KillSwitch.requested("[gateway]\naddress = \"vpn\"\n"))
    }

    @Test
    fun killSwitchNeedsLockdown() {
        assertNull(KillSwitch.refusal(requested = false, sdk = 24, lockdown = false))
        assertNull(KillSwitch.refusal(requested = true, sdk = 34, lockdown = true))
        assertNotNull(KillSwitch.refusal(requested = true, sdk = 34, lockdown = false))
        assertTrue(KillSwitch.refusal(requested = true, sdk = 34, lockdown = false)!!.contains("Block connections without VPN"))
        assertNotNull(KillSwitch.refusal(requested = true, sdk = 28, lockdown = false))
    }
}
