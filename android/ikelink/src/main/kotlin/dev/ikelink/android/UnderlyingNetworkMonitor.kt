package dev.ikelink.android

import android.content.Context
import android.net.ConnectivityManager
import android.net.LinkProperties
import android.net.Network
import android.net.NetworkCapabilities
import android.net.NetworkRequest
import android.os.Handler
import android.os.Looper

/**
 * Tells Ikelink when the physical network under the tunnel changes (Wi-Fi <-> mobile, a new address), so it
 * moves the SAs (MOBIKE) or reconnects: [onChange] is then called, debounced, on the main thread.
 *
 * Why not `registerDefaultNetworkCallback`: the VPN app's own UID is routed through its VPN, so once the
 * tunnel is up its default network is the VPN itself and physical changes would go unseen. We watch the
 * non-VPN Internet networks instead (NET_CAPABILITY_NOT_VPN) and compare their addresses.
 */
internal class UnderlyingNetworkMonitor(context: Context, private val onChange: () -> Unit) {
    private val connectivity = requireNotNull(context.getSystemService(ConnectivityManager::class.java)) {
        "no ConnectivityManager"
    }
    private val main = Handler(Looper.getMainLooper())
    private val lock = Any()

    /** Network -> its addresses. Guarded by lock (callbacks arrive on ConnectivityManager's thread). */
    private val networks = LinkedHashMap<Network, Set<String>>()

    /** The last fingerprint reported; null until the first (baseline) one. Main thread only. */
    private var last: Set<String>? = null
    private var started = false

    private val callback = object : ConnectivityManager.NetworkCallback() {
        override fun onAvailable(network: Network) {
            record(network, connectivity.getLinkProperties(network))
        }

        override fun onLinkPropertiesChanged(network: Network, linkProperties: LinkProperties) {
            record(network, linkProperties)
        }

        override fun onLost(network: Network) {
            synchronized(lock) { networks.remove(network) }
            schedule()
        }
    }

    private val check = Runnable {
        val now = synchronized(lock) { networks.flatMap { (n, a) -> a.map { "$n/$it" } }.toSet() }
        val before = last
        last = now
        if (before != null && before != now && now.isNotEmpty()) onChange()
    }

    /** The underlying network that came up last (the one the system most likely moved to), or null. */
    fun current(): Network? = synchronized(lock) { networks.keys.lastOrNull() }

    fun start() {
        if (started) return
        started = true
        val request = NetworkRequest.Builder()
            .addCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET)
            .addCapability(NetworkCapabilities.NET_CAPABILITY_NOT_VPN)
            .build()
        connectivity.registerNetworkCallback(request, callback)
    }

    fun stop() {
        if (!started) return
        started = false
        try {
            connectivity.unregisterNetworkCallback(callback)
        } catch (e: IllegalArgumentException) {
            // Not registered (any more).
        }
        main.removeCallbacks(check)
    }

    private fun record(network: Network, properties: LinkProperties?) {
        val addresses = properties?.linkAddresses.orEmpty().map { it.address.hostAddress ?: it.toString() }.toSet()
        synchronized(lock) {
            if (network !in networks) networks[network] = addresses else networks[network] = addresses
        }
        schedule()
    }

    /** Handovers come as bursts of callbacks: act once they settle. */
    private fun schedule() {
        main.removeCallbacks(check)
        main.postDelayed(check, DEBOUNCE_MS)
    }

    private companion object {
        const val DEBOUNCE_MS = 500L
    }
}
