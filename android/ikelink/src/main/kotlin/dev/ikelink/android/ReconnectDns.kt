package dev.ikelink.android

import uniffi.ikelink_ffi.TunnelState
import uniffi.ikelink_ffi.VpnEvent

/**
 * Name lookups while reconnecting. The VPN app's own traffic goes through its VPN, and the TUN stays up while
 * Ikelink reconnects, so its lookups (the gateway's name again, backup gateways, a redirect target) would go
 * into the dead tunnel and time out. While the session is reconnecting the process is bound to the underlying
 * network (`ConnectivityManager.bindProcessToNetwork`: lookups and new unbound sockets, Ikelink's own
 * `getaddrinfo` included), and unbound once it is connected or closed.
 *
 * Pure logic over [bind] (null: unbind), so it is tested on the JVM. Events arrive on an Ikelink thread.
 */
internal class ReconnectDns<N : Any>(private val underlying: () -> N?, private val bind: (N?) -> Boolean) {
    private var bound: N? = null

    @Synchronized
    fun onEvent(event: VpnEvent) {
        when {
            event is VpnEvent.Reconnecting -> {
                val n = underlying() ?: return
                if (n != bound && bind(n)) bound = n
            }
            event is VpnEvent.Closed ||
                (event is VpnEvent.StateChanged && event.state == TunnelState.CONNECTED) ||
                event is VpnEvent.Connected -> release()
        }
    }

    @Synchronized
    fun release() {
        if (bound != null) {
            bind(null)
            bound = null
        }
    }
}
