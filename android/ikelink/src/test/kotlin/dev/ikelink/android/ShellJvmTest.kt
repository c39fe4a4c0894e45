package dev.ikelink.android

import java.io.ByteArrayInputStream
import java.security.KeyPairGenerator
import java.security.KeyStore
import java.security.Signature
import java.security.cert.CertificateFactory
import java.security.cert.X509Certificate
import java.security.spec.ECGenParameterSpec
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import uniffi.ikelink_ffi.CallbackException
import uniffi.ikelink_ffi.IpPrefix
import uniffi.ikelink_ffi.SessionDetails
import uniffi.ikelink_ffi.SignatureAlgorithm
import uniffi.ikelink_ffi.TrafficStats
import uniffi.ikelink_ffi.TunnelState
import uniffi.ikelink_ffi.VpnEvent
import uniffi.ikelink_ffi.VpnException

/** JVM tests of the shell's own logic (no device, no native library): status folding, trust, signing. */
class ShellJvmTest {
    private val ca = pem(CA_PEM)
    private val gateway = pem(GATEWAY_PEM)

    @Test
    fun statusFollowsEveryEvent() {
        val details = SessionDetails(
            "192.0.2.1", "10.3.0.1", null, listOf("10.3.0.53"), listOf("corp.example"),
            listOf(IpPrefix("0.0.0.0", 0u)), "aes256gcm16-prfsha256-x25519", "aes256gcm16", "me", "vpn", false, listOf(), false, "none", "udp",
        )
        var s = IkelinkStatus()
        s = s.after(VpnEvent.StateChanged(TunnelState.CONNECTING))
        assertEquals(TunnelState.CONNECTING, s.state)
        s = s.after(VpnEvent.StateChanged(TunnelState.CONNECTED)).after(VpnEvent.Connected(details))
        s = s.after(VpnEvent.TunnelUp("tun0", 1400u.toUShort()))
        assertEquals("tun0", s.interfaceName)
        s = s.after(VpnEvent.Rekeyed("chacha20poly1305"))
        assertEquals("chacha20poly1305", s.details?.espSuite)
        s = s.after(VpnEvent.Stats(TrafficStats(1u, 100u, 2u, 200u, 0u)))
        assertEquals(200uL, s.stats?.bytesIn)
        val reason = VpnException.Unreachable("no answer")
        s = s.after(VpnEvent.Reconnecting(1u, 500uL, reason))
        assertEquals(TunnelState.RECONNECTING, s.state)
        assertEquals(1u, s.reconnect?.attempt)
        s = s.after(VpnEvent.StateChanged(TunnelState.CONNECTED))
        assertNull(s.reconnect)
        s = s.after(VpnEvent.Closed(null))
        assertEquals(TunnelState.DISCONNECTED, s.state)
        assertNull(s.details)
        assertNull(s.lastError)
        assertEquals(200uL, s.stats?.bytesIn)
    }

    @Test
    fun trustNeedsTheAnchor() {
        val evaluator = AndroidTrustEvaluator.forAnchors(listOf(ca))
        evaluator.evaluate(listOf(gateway.encoded, ca.encoded), "vpn.example.org")
        evaluator.evaluate(listOf(gateway.encoded), null)
        // Only the chain is judged here: Ikelink's core matches the gateway's identity against the certificate.
        evaluator.evaluate(listOf(gateway.encoded), "other.example.org")
        refused { evaluator.evaluate(emptyList(), "vpn.example.org") }
        refused { evaluator.evaluate(listOf(byteArrayOf(1, 2, 3)), "vpn.example.org") }
        refused { AndroidTrustEvaluator().evaluate(listOf(gateway.encoded), "vpn.example.org") }
    }

    @Test
    fun deviceCasIncludeUserCasUnlessNarrowed() {
        // Laid out like AndroidCAStore: "system:<hash>.<n>" for the OS's CAs, "user:<hash>.<n>" for installed ones.
        val store = KeyStore.getInstance(KeyStore.getDefaultType()).apply {
            load(null, null)
            setCertificateEntry("user:0123abcd.0", ca)
            setCertificateEntry("system:89abcdef.0", publicCa) // some other CA, not the gateway's issuer
            setCertificateEntry("ikelink-other", ca) // neither system nor user: never selected
        }
        assertEquals(
            setOf("user:0123abcd.0", "system:89abcdef.0"),
            AndroidTrustEvaluator.selectCas(store, DeviceCas.SYSTEM_AND_USER).aliases().toList().toSet(),
        )
        assertEquals(listOf("system:89abcdef.0"), AndroidTrustEvaluator.selectCas(store, DeviceCas.SYSTEM).aliases().toList())
        assertEquals(listOf("user:0123abcd.0"), AndroidTrustEvaluator.selectCas(store, DeviceCas.USER).aliases().toList())

        val chain = listOf(gateway.encoded, ca.encoded)
        // The default: a gateway under a CA the user installed is trusted.
        AndroidTrustEvaluator.forCaStore(store, DeviceCas.SYSTEM_AND_USER).evaluate(chain, "vpn.example.org")
        AndroidTrustEvaluator.forCaStore(store, DeviceCas.USER).evaluate(chain, "vpn.example.org")
        // Narrowed to the OS's CAs, it is not.
        refused { AndroidTrustEvaluator.forCaStore(store, DeviceCas.SYSTEM).evaluate(chain, "vpn.example.org") }
        // No user CA installed: USER trusts nothing (rather than failing to build).
        val systemOnly = KeyStore.getInstance(KeyStore.getDefaultType()).apply {
            load(null, null)
            setCertificateEntry("system:89abcdef.0", publicCa)
        }
        refused { AndroidTrustEvaluator.forCaStore(systemOnly, DeviceCas.USER).evaluate(chain, "vpn.example.org") }
    }

    @Test
    fun signsWithTheKeysOwnAlgorithm() {
        val ec = KeyPairGenerator.getInstance("EC").apply { initialize(ECGenParameterSpec("secp384r1")) }.generateKeyPair()
        val signer = AndroidKeystoreSigner(ec.private)
        assertEquals(listOf(SignatureAlgorithm.ECDSA_P384_SHA384), signer.algorithms())
        val data = "IKE_AUTH octets".toByteArray()
        val signature = signer.sign(SignatureAlgorithm.ECDSA_P384_SHA384, data)
        assertTrue(Signature.getInstance("SHA384withECDSA").run { initVerify(ec.public); update(data); verify(signature) })
        refused { signer.sign(SignatureAlgorithm.ECDSA_P256_SHA256, data) }

        val rsa = KeyPairGenerator.getInstance("RSA").apply { initialize(2048) }.generateKeyPair()
        val rsaSigner = AndroidKeystoreSigner(rsa.private)
        assertEquals(SignatureAlgorithm.RSA_PKCS1_SHA256, rsaSigner.algorithms().first())
        val rsaSignature = rsaSigner.sign(SignatureAlgorithm.RSA_PKCS1_SHA256, data)
        assertTrue(Signature.getInstance("SHA256withRSA").run { initVerify(rsa.public); update(data); verify(rsaSignature) })
    }

    private fun refused(block: () -> Unit) {
        try {
            block()
            fail("accepted")
        } catch (e: CallbackException.Failed) {
            // refused, with a message for the app
        }
    }

    /** Some public CA of the JDK's store (stands for an OS CA). */
    private val publicCa: X509Certificate by lazy {
        val cacerts = java.io.File(System.getProperty("java.home"), "lib/security/cacerts")
        val store = KeyStore.getInstance(KeyStore.getDefaultType()).apply { cacerts.inputStream().use { load(it, null) } }
        store.getCertificate(store.aliases().nextElement()) as X509Certificate
    }

    private fun pem(text: String): X509Certificate =
        CertificateFactory.getInstance("X.509").generateCertificate(ByteArrayInputStream(text.toByteArray())) as X509Certificate

    private companion object {
        // openssl, P-256, valid until 2126: CA "C=CH, O=Ikelink Test, CN=Test CA"; gateway with SANs
        // DNS:vpn.example.org, IP:192.0.2.1, IP:2001:db8::1, email:gw@example.org, EKU serverAuth.
        const val CA_PEM = """-----BEGIN CERTIFICATE-----
MIIB0jCCAXmgAwIBAgIUc3oZw9SefHRG4oRyqSFzao+N5vYwCgYIKoZIzj0EAwIw
NjELMAkGA1UEBhMCQ0gxFTATBgNVBAoMDElrZWxpbmsgVGVzdDEQMA4GA1UEAwwH
VGVzdCBDQTAgFw0yNjExMjMxNDM0MTVaGA8yMTI2MTAzMDE0MzQxNVowNjELMAkG
A1UEBhMCQ0gxFTATBgNVBAoMDElrZWxpbmsgVGVzdDEQMA4GA1UEAwwHVGVzdCBD
QTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAATU1UOTmKUdL3cZ+ywubMce44Y
AqUxF0EivLH7Ae6Z1QPv8pm6MIEOT/0lRqqinLX5n4fOXSc9DRPlsCkN7JqjYzBh
MB0GA1UdDgQWBBT9oI+u6kEJXU7wkI9WREMobUXnwzAfBgNVHSMEGDAWgBT9oI+u
6kEJXU7wkI9WREMobUXnwzAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIB
BjAKBggqhkjOPQQDAgNHADBEAiBNsKz0X8+S7bEyoR+bu8y2Ea2zhbKD1aENZqVu
iNkFBgIgMlk0zYo1ase18xxnm0UaXEv8EHa8/Tn+d7wWOprwTJQ=
-----END CERTIFICATE-----"""
        const val GATEWAY_PEM = """-----BEGIN CERTIFICATE-----
MIICITCCAcigAwIBAgIUQUd775qt5aKmPAw70pXCFiZ4PKswCgYIKoZIzj0EAwIw
NjELMAkGA1UEBhMCQ0gxFTATBgNVBAoMDElrZWxpbmsgVGVzdDEQMA4GA1UEAwwH
VGVzdCBDQTAgFw0yNjExMjMxNDM0MTVaGA8yMTI2MTAzMDE0MzQxNVowPjELMAkG
A1UEBhMCQ0gxFTATBgNVBAoMDElrZWxpbmsgVGVzdDEYMBYGA1UEAwwPdnBuLmV4
YW1wbGUub3JnMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2RrsnF9FgB8frxCR
y/thXFqOaZ2kw3k1PSUrIdN4eWrFfrjPVVM3PG9EZ5VImHKg7Z6VIxnK9nN+s7rr
14Cu76OBqTCBpjBCBgNVHREEOzA5gg92cG4uZXhhbXBsZS5vcmeHBMAAAgGHECAB
DbgAAAAAAAAAAAAAAAGBDmd3QGV4YW1wbGUub3JnMBMGA1UdJQQMMAoGCCsGAQUF
BwMBMAsGA1UdDwQEAwIHgDAdBgNVHQ4EFgQU+6x+b64ocb9AqFO3LGm4iFes68Yw
HwYDVR0jBBgwFoAU/aCPrupBCV1O8JCPVkRDKG1F58MwCgYIKoZIzj0EAwIDRwAw
RAIgTJxHIMwZ+2w7klY/oNER+6N3A4p7AXJvkba22O0WeTQCIHJ/jRpoVbMQi1P7
UO1xe9/Juk6OsOruGEZpIyRY+Taf
-----END CERTIFICATE-----"""
    }
}
