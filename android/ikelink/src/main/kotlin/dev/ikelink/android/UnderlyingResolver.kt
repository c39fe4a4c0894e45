package dev.ikelink.android

import java.net.InetAddress
import uniffi.ikelink_ffi.CallbackException
import uniffi.ikelink_ffi.NameResolver

/**
 * Ikelink's own name lookups (the gateway's name, backup gateways, redirect targets, CRL and OCSP hosts), on
 * the network under the VPN. The VPN app's traffic goes through its own VPN, and the TUN stays up while
 * Ikelink reconnects, so a plain lookup would go into the tunnel that is down; this one asks the underlying
 * network (`Network.getAllByName`), and the system's default network when none is known yet (before the
 * tunnel is up, that is the underlying one). Nothing else of the app leaves the tunnel.
 *
 * Generic over the network type so the choice is tested on the JVM. Called on an Ikelink thread; may block.
 */
internal class UnderlyingResolver<N : Any>(
    private val underlying: () -> N?,
    private val onNetwork: (N, String) -> Array<InetAddress>,
    private val system: (String) -> Array<InetAddress> = InetAddress::getAllByName,
) : NameResolver {
    override fun resolve(host: String): List<String> {
        val addresses = try {
            when (val n = underlying()) {
                null -> system(host)
                else -> onNetwork(n, host)
            }
        } catch (e: Exception) {
            throw CallbackException.Failed("cannot resolve $host: $e")
        }
        return addresses.mapNotNull { it.hostAddress }.ifEmpty { throw CallbackException.Failed("$host has no address") }
    }
}
