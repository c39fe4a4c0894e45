package dev.ikelink.android

import android.util.Log
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
 * Which certificate authorities of the device the gateway's chain may lead to.
 *
 * Android keeps both in the `AndroidCAStore` key store: aliases `system:...` for the CAs that ship with the OS
 * (minus those the user disabled in Settings > Security > Trusted credentials), `user:...` for the CAs the
 * user installed. Apps targeting Android 7 (API 24) and later do not trust user CAs for TLS by default
 * (`TrustManagerFactory.init(null)`); a VPN client normally must, since a company's own CA is usually installed
 * by the user or a device policy (strongSwan's app trusts both the same way).
 */
enum class DeviceCas(internal val system: Boolean, internal val user: Boolean) {
    /** The OS's CAs and the CAs the user installed (the default). */
    SYSTEM_AND_USER(true, true),
    /** Only the CAs that ship with the OS. */
    SYSTEM(true, false),
    /** Only the CAs the user (or a device policy) installed: e.g. a company CA, excluding public CAs. */
    USER(false, true),
}

/**
 * The platform's trust in the gateway's certificate chain (`GatewayTrust.Platform`): the chain goes through an
 * [X509TrustManager] (by default over the device's system and user CAs, see [DeviceCas]). That is all it
 * answers: Ikelink itself checks that the certificate names the gateway's identity (before asking) and verifies
 * the AUTH signature. Throwing refuses the gateway; the message is reported as `VpnException.GatewayUntrusted`.
 * Called on an Ikelink runtime thread.
 *
 * Android's trust manager checks the chain as for a TLS server: a gateway certificate with an extended key
 * usage must include serverAuth (strongSwan's `pki --flag serverAuth`). It takes no host name.
 *
 * Constructing one reads the device's CA store: do it off the main thread (e.g. in
 * [IkelinkVpnService.connectOptions]), and again per connection so CAs installed meanwhile count.
 */
class AndroidTrustEvaluator @JvmOverloads constructor(
    private val trustManager: X509TrustManager = deviceTrustManager(DeviceCas.SYSTEM_AND_USER),
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
        private const val TAG = "Ikelink"
        private const val ANDROID_CA_STORE = "AndroidCAStore"

        /** An evaluator over the device's CAs, narrowed to [cas] (e.g. [DeviceCas.USER] for a company CA only). */
        @JvmStatic
        fun forDeviceCas(cas: DeviceCas): AndroidTrustEvaluator = AndroidTrustEvaluator(deviceTrustManager(cas))

        /**
         * A trust manager over the device's CAs ([cas] of the `AndroidCAStore` key store). Where that store does
         * not exist (a plain JVM, not Android) it falls back to the platform's default trust manager.
         */
        @JvmStatic
        @JvmOverloads
        fun deviceTrustManager(cas: DeviceCas = DeviceCas.SYSTEM_AND_USER): X509TrustManager {
            val store = try {
                KeyStore.getInstance(ANDROID_CA_STORE).apply { load(null, null) }
            } catch (e: Exception) {
                Log.w(TAG, "no $ANDROID_CA_STORE key store ($e): using the default trust manager")
                return trustManagerFor(null)
            }
            return trustManagerFor(selectCas(store, cas))
        }

        /** An evaluator over [caStore] (laid out as `AndroidCAStore`) narrowed to [cas]; for tests. */
        @JvmStatic
        internal fun forCaStore(caStore: KeyStore, cas: DeviceCas): AndroidTrustEvaluator =
            AndroidTrustEvaluator(trustManagerFor(selectCas(caStore, cas)))

        /**
         * The trusted certificates of [caStore] (aliases `system:...` and `user:...`, as in `AndroidCAStore`)
         * that [cas] admits, in a new in-memory key store. Entries under other aliases are left out.
         */
        @JvmStatic
        fun selectCas(caStore: KeyStore, cas: DeviceCas): KeyStore {
            val selected = KeyStore.getInstance(KeyStore.getDefaultType()).apply { load(null, null) }
            for (alias in caStore.aliases().toList()) {
                val admitted = (cas.system && alias.startsWith("system:")) || (cas.user && alias.startsWith("user:"))
                if (!admitted) continue
                val certificate = caStore.getCertificate(alias) as? X509Certificate ?: continue
                selected.setCertificateEntry(alias, certificate)
            }
            return selected
        }

        /** The platform's default trust manager (`TrustManagerFactory.init(null)`: no user CAs on API 24+). */
        @JvmStatic
        @Deprecated("Ignores user-installed CAs on Android 7+; use deviceTrustManager()", ReplaceWith("deviceTrustManager()"))
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
            if (store != null && store.size() == 0) {
                // PKIX refuses an empty anchor set with an exception; an empty selection simply trusts nothing.
                return NothingTrusted
            }
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

    /** No CA selected (e.g. [DeviceCas.USER] and the user installed none). */
    private object NothingTrusted : X509TrustManager {
        override fun checkClientTrusted(chain: Array<out X509Certificate>?, authType: String?) =
            throw CertificateException("no CA is trusted")
        override fun checkServerTrusted(chain: Array<out X509Certificate>?, authType: String?) =
            throw CertificateException("no trusted CA on this device matches (none selected)")
        override fun getAcceptedIssuers(): Array<X509Certificate> = emptyArray()
    }
}
