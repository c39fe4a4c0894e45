package dev.ikelink.android

import java.io.ByteArrayInputStream
import java.security.KeyStore
import java.security.cert.CertificateException
import java.security.cert.CertificateFactory
import java.security.cert.X509Certificate
import javax.net.ssl.TrustManagerFactory
import javax.net.ssl.X509TrustManager
import uniffi.ikelink_ffi.CallbackException
import uniffi.ikelink_ffi.TrustEvaluator

/**
 * The platform's trust in the gateway's certificate chain (`GatewayTrust.Platform`): the chain goes through an
 * [X509TrustManager] (by default the system's, which includes CAs the user installed). That is all it answers:
 * Ikelink itself checks that the certificate names the gateway's identity (before asking) and verifies the
 * AUTH signature. Throwing refuses the gateway; the message is reported as `VpnException.GatewayUntrusted`.
 * Called on an Ikelink runtime thread.
 *
 * Android's trust manager checks the chain as for a TLS server: a gateway certificate with an extended key
 * usage must include serverAuth (strongSwan's `pki --flag serverAuth`). It takes no host name.
 */
class AndroidTrustEvaluator @JvmOverloads constructor(
    private val trustManager: X509TrustManager = systemTrustManager(),
) : TrustEvaluator {

    override fun evaluate(chain: List<ByteArray>, hostName: String?) {
        val certificates = try {
            val factory = CertificateFactory.getInstance("X.509")
            chain.map { factory.generateCertificate(ByteArrayInputStream(it)) as X509Certificate }
        } catch (e: CertificateException) {
            throw CallbackException.Failed("cannot parse the gateway's certificate: $e")
        }
        val leaf = certificates.firstOrNull() ?: throw CallbackException.Failed("the gateway sent no certificate")
        try {
            trustManager.checkServerTrusted(certificates.toTypedArray(), authType(leaf))
        } catch (e: CertificateException) {
            throw CallbackException.Failed("the gateway's certificate is not trusted: ${e.message ?: e}")
        } catch (e: IllegalArgumentException) {
            throw CallbackException.Failed("the gateway's certificate is not trusted: ${e.message ?: e}")
        }
    }

    companion object {
        /** The system's trust manager (system and user CAs, as for TLS). */
        @JvmStatic
        fun systemTrustManager(): X509TrustManager = trustManagerFor(null)

        /** A trust manager that trusts exactly [anchors] (the gateway's CA shipped with the app). */
        @JvmStatic
        fun forAnchors(anchors: List<X509Certificate>): AndroidTrustEvaluator {
            val store = KeyStore.getInstance(KeyStore.getDefaultType()).apply {
                load(null, null)
                anchors.forEachIndexed { i, ca -> setCertificateEntry("ikelink-ca-$i", ca) }
            }
            return AndroidTrustEvaluator(trustManagerFor(store))
        }

        private fun trustManagerFor(store: KeyStore?): X509TrustManager {
            val factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm())
            factory.init(store)
            return factory.trustManagers.filterIsInstance<X509TrustManager>().firstOrNull()
                ?: throw IllegalStateException("no X509TrustManager on this device")
        }

        /** The TLS key exchange the leaf's key would sign for (the trust manager checks key usage against it). */
        private fun authType(leaf: X509Certificate): String = when (leaf.publicKey.algorithm) {
            "RSA" -> "ECDHE_RSA"
            "EC" -> "ECDHE_ECDSA"
            else -> "GENERIC"
        }
    }
}
