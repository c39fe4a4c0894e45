package dev.ikelink.android

import uniffi.ikelink_ffi.SessionDetails
import uniffi.ikelink_ffi.TrafficStats
import uniffi.ikelink_ffi.TunnelState
import uniffi.ikelink_ffi.VpnEvent
import uniffi.ikelink_ffi.VpnException

/** A reconnection in progress: the tunnel stays up (nothing leaks), the next attempt starts after [delayMs]. */
data class Reconnect(val attempt: UInt, val delayMs: ULong, val reason: VpnException)

/**
 * The tunnel as the app's UI shows it, folded from [VpnEvent]s by [IkelinkVpnService.status].
 * Errors stay typed ([VpnException] subclasses): the UI decides how to word them.
 */
data class IkelinkStatus(
    val state: TunnelState = TunnelState.DISCONNECTED,
    /** What was negotiated (virtual IP, DNS, routes, suites), from `Connected`; the ESP suite follows rekeys. */
    val details: SessionDetails? = null,
    /** The TUN interface and its MTU, from `TunnelUp`. */
    val interfaceName: String? = null,
    val mtu: UShort? = null,
    val stats: TrafficStats? = null,
    val reconnect: Reconnect? = null,
    /** Why the last session ended or the last attempt failed; null after a clean disconnect. */
    val lastError: VpnException? = null,
) {
    /** This status after [event]. Every [VpnEvent] is mapped (the `when` is exhaustive). */
    fun after(event: VpnEvent): IkelinkStatus = when (event) {
        is VpnEvent.StateChanged -> copy(
            state = event.state,
            reconnect = if (event.state == TunnelState.RECONNECTING) reconnect else null,
        )
        is VpnEvent.Connected -> copy(details = event.details, reconnect = null, lastError = null)
        is VpnEvent.TunnelUp -> copy(interfaceName = event.`interface`, mtu = event.mtu)
        is VpnEvent.Rekeyed -> copy(details = details?.copy(espSuite = event.espSuite))
        is VpnEvent.Reconnecting -> copy(
            state = TunnelState.RECONNECTING,
            reconnect = Reconnect(event.attempt, event.delayMs, event.reason),
            lastError = event.reason,
        )
        is VpnEvent.Stats -> copy(stats = event.stats)
        is VpnEvent.Closed -> IkelinkStatus(state = TunnelState.DISCONNECTED, stats = stats, lastError = event.error)
    }
}
