package dev.ikelink.android

import android.content.Context
import android.security.KeyChain
import java.security.GeneralSecurityException
import java.security.KeyStore
import java.security.PrivateKey
import java.security.Signature
import java.security.interfaces.ECKey
import uniffi.ikelink_ffi.CallbackException
import uniffi.ikelink_ffi.ClientIdentity
import uniffi.ikelink_ffi.KeystoreSigner
import uniffi.ikelink_ffi.SignatureAlgorithm

/**
 * Signs IKE_AUTH with a private key that stays in Android's key store (KeyChain or AndroidKeyStore), through
 * [Signature]: the key store hashes the whole message. ECDSA signatures come out DER-encoded, as Ikelink
 * expects. Called on an Ikelink runtime thread.
 */
class AndroidKeystoreSigner @JvmOverloads constructor(
    private val key: PrivateKey,
    /** What the key may sign with, most preferred first; by default from the key's type and size. */
    private val algorithms: List<SignatureAlgorithm> = defaultAlgorithms(key),
) : KeystoreSigner {

    override fun algorithms(): List<SignatureAlgorithm> = algorithms

    override fun sign(algorithm: SignatureAlgorithm, data: ByteArray): ByteArray {
        if (algorithm !in algorithms) throw CallbackException.Failed("the key does not offer $algorithm")
        return try {
            Signature.getInstance(jcaName(algorithm)).run {
                initSign(key)
                update(data)
                sign()
            }
        } catch (e: GeneralSecurityException) {
            throw CallbackException.Failed("key store signature ($algorithm) failed: $e")
        }
    }

    companion object {
        /**
         * The identity for `ConnectOptions.clientIdentity` from a KeyChain alias (a certificate the user
         * installed, chosen with `KeyChain.choosePrivateKeyAlias`). Blocks: call it off the main thread, e.g.
         * from [IkelinkVpnService.connectOptions].
         */
        @JvmStatic
        fun fromKeyChain(context: Context, alias: String): ClientIdentity.Keystore {
            val key = KeyChain.getPrivateKey(context, alias)
                ?: throw IllegalStateException("no private key for KeyChain alias $alias (access not granted?)")
            val chain = KeyChain.getCertificateChain(context, alias)
                ?: throw IllegalStateException("no certificate chain for KeyChain alias $alias")
            return ClientIdentity.Keystore(chain.map { it.encoded }, AndroidKeystoreSigner(key))
        }

        /** The identity from an AndroidKeyStore entry the app generated or imported under [alias]. */
        @JvmStatic
        fun fromAndroidKeyStore(alias: String): ClientIdentity.Keystore {
            val store = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }
            val entry = store.getEntry(alias, null) as? KeyStore.PrivateKeyEntry
                ?: throw IllegalStateException("AndroidKeyStore has no private key entry $alias")
            return ClientIdentity.Keystore(
                entry.certificateChain.map { it.encoded },
                AndroidKeystoreSigner(entry.privateKey),
            )
        }

        /**
         * RSA: PKCS#1 v1.5 first (every key store key allows it), then PSS (keys generated with PSS padding);
         * EC: the curve's own hash; Ed25519 where Android has it (13+).
         */
        @JvmStatic
        fun defaultAlgorithms(key: PrivateKey): List<SignatureAlgorithm> = when (key.algorithm) {
            "RSA" -> listOf(
                SignatureAlgorithm.RSA_PKCS1_SHA256,
                SignatureAlgorithm.RSA_PKCS1_SHA384,
                SignatureAlgorithm.RSA_PKCS1_SHA512,
                SignatureAlgorithm.RSA_PSS_SHA256,
                SignatureAlgorithm.RSA_PSS_SHA384,
                SignatureAlgorithm.RSA_PSS_SHA512,
            )
            "EC" -> when ((key as? ECKey)?.params?.curve?.field?.fieldSize) {
                384 -> listOf(SignatureAlgorithm.ECDSA_P384_SHA384)
                521 -> listOf(SignatureAlgorithm.ECDSA_P521_SHA512)
                else -> listOf(SignatureAlgorithm.ECDSA_P256_SHA256)
            }
            "Ed25519", "EdDSA" -> listOf(SignatureAlgorithm.ED25519)
            else -> emptyList()
        }

        /** The JCA name of [algorithm] (PSS: MGF1 with the same hash, salt as long as the hash). */
        @JvmStatic
        fun jcaName(algorithm: SignatureAlgorithm): String = when (algorithm) {
            SignatureAlgorithm.RSA_PKCS1_SHA256 -> "SHA256withRSA"
            SignatureAlgorithm.RSA_PKCS1_SHA384 -> "SHA384withRSA"
            SignatureAlgorithm.RSA_PKCS1_SHA512 -> "SHA512withRSA"
            SignatureAlgorithm.RSA_PSS_SHA256 -> "SHA256withRSA/PSS"
            SignatureAlgorithm.RSA_PSS_SHA384 -> "SHA384withRSA/PSS"
            SignatureAlgorithm.RSA_PSS_SHA512 -> "SHA512withRSA/PSS"
            SignatureAlgorithm.ECDSA_P256_SHA256 -> "SHA256withECDSA"
            SignatureAlgorithm.ECDSA_P384_SHA384 -> "SHA384withECDSA"
            SignatureAlgorithm.ECDSA_P521_SHA512 -> "SHA512withECDSA"
            SignatureAlgorithm.ED25519 -> "Ed25519"
        }
    }
}
