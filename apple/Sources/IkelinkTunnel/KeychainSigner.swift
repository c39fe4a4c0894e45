import Foundation
import IkelinkFFI
import Security

/// Signs IKE_AUTH with a private key that stays in the Keychain (or the Secure Enclave), through
/// `SecKeyCreateSignature`: the Keychain hashes the whole message, and ECDSA signatures come out as DER
/// (X9.62), as Ikelink expects. Called on an Ikelink runtime thread.
public final class KeychainSigner: KeystoreSigner, @unchecked Sendable {
    private let key: SecKey
    private let offered: [SignatureAlgorithm]

    /// `algorithms`: what the key may sign with, most preferred first; by default from its type and size.
    public init(privateKey: SecKey, algorithms: [SignatureAlgorithm]? = nil) {
        key = privateKey
        offered = algorithms ?? Self.defaultAlgorithms(for: privateKey)
    }

    public func algorithms() throws -> [SignatureAlgorithm] {
        offered
    }

    public func sign(algorithm: SignatureAlgorithm, data: Data) throws -> Data {
        guard offered.contains(algorithm), let secAlgorithm = Self.secAlgorithm(algorithm) else {
            throw CallbackError.Failed(reason: "the key does not offer \(algorithm)")
        }
        var error: Unmanaged<CFError>?
        guard let signature = SecKeyCreateSignature(key, secAlgorithm, data as CFData, &error) else {
            let reason = error.map { ($0.takeRetainedValue() as Error).localizedDescription } ?? "unknown error"
            throw CallbackError.Failed(reason: "Keychain signature (\(algorithm)) failed: \(reason)")
        }
        return signature as Data
    }

    /// `ConnectOptions.clientIdentity` for a Keychain identity (certificate and private key), e.g. from
    /// `SecPKCS12Import` or `SecItemCopyMatching` with `kSecClassIdentity` (in the App Group's access group
    /// when the app imported it). `intermediates`: CA certificates to send after the end entity.
    public static func clientIdentity(_ identity: SecIdentity, intermediates: [SecCertificate] = []) throws
        -> ClientIdentity
    {
        var key: SecKey?
        var certificate: SecCertificate?
        guard SecIdentityCopyPrivateKey(identity, &key) == errSecSuccess, let key else {
            throw IkelinkTunnelError.keychain("the identity's private key is not accessible")
        }
        guard SecIdentityCopyCertificate(identity, &certificate) == errSecSuccess, let certificate else {
            throw IkelinkTunnelError.keychain("the identity has no certificate")
        }
        let chain = ([certificate] + intermediates).map { SecCertificateCopyData($0) as Data }
        return .keystore(certificateChain: chain, signer: KeychainSigner(privateKey: key))
    }

    /// RSA: PKCS#1 v1.5, then PSS; EC: the curve's own hash. Only what `SecKeyIsAlgorithmSupported` allows.
    public static func defaultAlgorithms(for key: SecKey) -> [SignatureAlgorithm] {
        guard let attributes = SecKeyCopyAttributes(key) as? [String: Any] else { return [] }
        let type = attributes[kSecAttrKeyType as String] as? String
        let bits = attributes[kSecAttrKeySizeInBits as String] as? Int ?? 0
        let candidates: [SignatureAlgorithm]
        if type == (kSecAttrKeyTypeRSA as String) {
            candidates = [.rsaPkcs1Sha256, .rsaPkcs1Sha384, .rsaPkcs1Sha512, .rsaPssSha256, .rsaPssSha384, .rsaPssSha512]
        } else if type == (kSecAttrKeyTypeECSECPrimeRandom as String) {
            switch bits {
            case 384: candidates = [.ecdsaP384Sha384]
            case 521: candidates = [.ecdsaP521Sha512]
            default: candidates = [.ecdsaP256Sha256]
            }
        } else {
            candidates = []
        }
        return candidates.filter { algorithm in
            guard let secAlgorithm = secAlgorithm(algorithm) else { return false }
            return SecKeyIsAlgorithmSupported(key, .sign, secAlgorithm)
        }
    }

    /// The Security framework's name for `algorithm` (PSS: MGF1 with the same hash, salt as long as the hash).
    static func secAlgorithm(_ algorithm: SignatureAlgorithm) -> SecKeyAlgorithm? {
        switch algorithm {
        case .rsaPkcs1Sha256: return .rsaSignatureMessagePKCS1v15SHA256
        case .rsaPkcs1Sha384: return .rsaSignatureMessagePKCS1v15SHA384
        case .rsaPkcs1Sha512: return .rsaSignatureMessagePKCS1v15SHA512
        case .rsaPssSha256: return .rsaSignatureMessagePSSSHA256
        case .rsaPssSha384: return .rsaSignatureMessagePSSSHA384
        case .rsaPssSha512: return .rsaSignatureMessagePSSSHA512
        case .ecdsaP256Sha256: return .ecdsaSignatureMessageX962SHA256
        case .ecdsaP384Sha384: return .ecdsaSignatureMessageX962SHA384
        case .ecdsaP521Sha512: return .ecdsaSignatureMessageX962SHA512
        // Keychain keys are never Ed25519 (CryptoKit's Curve25519 keys are not SecKeys).
        case .ed25519: return nil
        }
    }
}
