import Foundation
import IkelinkFFI
import Security

/// The platform's trust in the gateway's certificate chain (`GatewayTrust.platform`) with
/// `SecTrustEvaluateWithError`: the chain against the system's trust store (with the profiles the user
/// installed) or only against `anchors`. That is all it answers: Ikelink itself checks that the certificate
/// names the gateway's identity (before asking) and verifies the AUTH signature. Throwing refuses the gateway
/// (reported as `VpnError.GatewayUntrusted`). Called on an Ikelink runtime thread.
///
/// With the host name Ikelink passes when the gateway's identity is a host name or an IP address, the SSL
/// server policy applies (the name in subjectAltName, serverAuth when the certificate has an extended key
/// usage), as Apple's own IKEv2 client wants; otherwise the basic X.509 policy.
public final class SecTrustEvaluator: TrustEvaluator, @unchecked Sendable {
    private let anchors: [SecCertificate]?
    private let allowNetworkFetch: Bool

    /// `anchors`: trust only these CAs (nil: the system's store). `allowNetworkFetch`: let the evaluation fetch
    /// intermediates and revocation over the network (it blocks an Ikelink thread meanwhile).
    public init(anchors: [SecCertificate]? = nil, allowNetworkFetch: Bool = false) {
        self.anchors = anchors
        self.allowNetworkFetch = allowNetworkFetch
    }

    public func evaluate(chain: [Data], hostName: String?) throws {
        let certificates = try chain.map { der -> SecCertificate in
            guard let certificate = SecCertificateCreateWithData(nil, der as CFData) else {
                throw CallbackError.Failed(reason: "cannot parse the gateway's certificate")
            }
            return certificate
        }
        guard !certificates.isEmpty else {
            throw CallbackError.Failed(reason: "the gateway sent no certificate")
        }
        // With a host name, the SSL server policy for it (as Apple's own IKEv2 client checks gateways); without
        // one (the gateway's identity is a DN or an e-mail address), the basic X.509 policy.
        let policy = hostName.map { SecPolicyCreateSSL(true, $0 as CFString) } ?? SecPolicyCreateBasicX509()
        var trust: SecTrust?
        guard SecTrustCreateWithCertificates(certificates as CFArray, policy, &trust) == errSecSuccess, let trust else {
            throw CallbackError.Failed(reason: "cannot evaluate the gateway's certificate")
        }
        if let anchors {
            _ = SecTrustSetAnchorCertificates(trust, anchors as CFArray)
            _ = SecTrustSetAnchorCertificatesOnly(trust, true)
        }
        _ = SecTrustSetNetworkFetchAllowed(trust, allowNetworkFetch)
        var error: CFError?
        guard SecTrustEvaluateWithError(trust, &error) else {
            let reason = error.map { ($0 as Error).localizedDescription } ?? "no reason given"
            throw CallbackError.Failed(reason: "the gateway's certificate is not trusted: \(reason)")
        }
    }
}
