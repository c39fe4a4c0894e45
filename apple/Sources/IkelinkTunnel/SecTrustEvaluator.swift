import Foundation
import IkelinkFFI
import Security

/// The platform's judgement of the gateway's certificate (`GatewayTrust.platform`) with
/// `SecTrustEvaluateWithError`: the chain against the system's trust store (with the profiles the user
/// installed) or only against `anchors`, and the identity the gateway claims against the end entity. Ikelink
/// leaves both to the platform and verifies the AUTH signature itself. Throwing refuses the gateway (reported
/// as `VpnError.GatewayUntrusted`). Called on an Ikelink runtime thread.
///
/// FQDN and IP identities go through the SSL policy (subjectAltName, and serverAuth when the certificate has
/// an extended key usage), as Apple's own IKEv2 client wants; e-mail identities must be in the certificate's
/// addresses, distinguished names must equal its subject (as Ikelink prints it: `C=CH, O=Example, CN=vpn`).
public final class SecTrustEvaluator: TrustEvaluator, @unchecked Sendable {
    private let anchors: [SecCertificate]?
    private let checkIdentity: Bool
    private let allowNetworkFetch: Bool

    /// `anchors`: trust only these CAs (nil: the system's store). `allowNetworkFetch`: let the evaluation fetch
    /// intermediates and revocation over the network (it blocks an Ikelink thread meanwhile).
    public init(anchors: [SecCertificate]? = nil, checkIdentity: Bool = true, allowNetworkFetch: Bool = false) {
        self.anchors = anchors
        self.checkIdentity = checkIdentity
        self.allowNetworkFetch = allowNetworkFetch
    }

    public func evaluate(chain: [Data], gatewayId: String) throws {
        let certificates = try chain.map { der -> SecCertificate in
            guard let certificate = SecCertificateCreateWithData(nil, der as CFData) else {
                throw CallbackError.Failed(reason: "cannot parse the gateway's certificate")
            }
            return certificate
        }
        guard let leaf = certificates.first else {
            throw CallbackError.Failed(reason: "the gateway sent no certificate")
        }
        let kind = IdentityKind(gatewayId)
        let byName = checkIdentity && (kind == .dns || kind == .ip)
        let policy = byName ? SecPolicyCreateSSL(true, gatewayId as CFString) : SecPolicyCreateBasicX509()
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
        guard checkIdentity, !byName else { return }
        let named: Bool
        switch kind {
        case .dns, .ip:
            named = true
        case .email:
            var addresses: CFArray?
            _ = SecCertificateCopyEmailAddresses(leaf, &addresses)
            named = ((addresses as? [String]) ?? []).contains { $0.caseInsensitiveCompare(gatewayId) == .orderedSame }
        case .distinguishedName:
            named = DistinguishedName.subject(ofCertificate: SecCertificateCopyData(leaf) as Data) == gatewayId
        case .other:
            named = false
        }
        if !named {
            throw CallbackError.Failed(reason: "the gateway's certificate does not name its identity \"\(gatewayId)\"")
        }
    }

    /// What kind of IKE identity Ikelink's display form `id` is.
    enum IdentityKind: Equatable {
        case dns, ip, email, distinguishedName, other

        init(_ id: String) {
            let hex = CharacterSet(charactersIn: "0123456789abcdefABCDEF:.")
            if id.range(of: #"^\d{1,3}(\.\d{1,3}){3}$"#, options: .regularExpression) != nil
                || (id.contains(":") && id.unicodeScalars.allSatisfy { hex.contains($0) })
            {
                self = .ip
            } else if id.contains("=") {
                self = .distinguishedName
            } else if id.contains("@") {
                self = .email
            } else if id.contains(":") || id.isEmpty {
                self = .other // `TYPE:hex` for key IDs and other types
            } else {
                self = .dns
            }
        }
    }
}

/// Just enough DER to print a certificate's subject the way Ikelink prints identities
/// (`ikelink::crypto::display_dn`): every attribute in DER order, `KEY=value` joined by ", ", string values
/// as text and others as `#` + the hex of their whole DER.
enum DistinguishedName {
    static func subject(ofCertificate der: Data) -> String? {
        do {
            var outer = DerReader(Array(der))
            var certificate = try outer.expect(0x30)
            var tbs = try certificate.expect(0x30)
            if tbs.peekTag == 0xA0 { _ = try tbs.next() } // [0] version
            _ = try tbs.next() // serialNumber
            _ = try tbs.next() // signature
            _ = try tbs.next() // issuer
            _ = try tbs.next() // validity
            let subject = try tbs.next()
            return try display(name: subject.raw)
        } catch {
            return nil
        }
    }

    static func display(name: [UInt8]) throws -> String {
        var parts: [String] = []
        var outer = DerReader(name)
        var rdns = try outer.expect(0x30)
        while !rdns.isEmpty {
            var set = try rdns.expect(0x31)
            while !set.isEmpty {
                var atv = try set.expect(0x30)
                let oid = try atv.next()
                guard oid.tag == 0x06 else { throw DerReader.Malformed() }
                let value = try atv.next()
                let dotted = oidString(oid.content)
                let key = names[dotted] ?? dotted
                let text: String
                switch value.tag {
                case 0x0C, 0x13, 0x14, 0x16: text = String(decoding: value.content, as: UTF8.self)
                default: text = "#" + value.raw.map { String(format: "%02x", $0) }.joined()
                }
                parts.append("\(key)=\(text)")
            }
        }
        return parts.joined(separator: ", ")
    }

    private static let names = [
        "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
        "2.5.4.5": "serialNumber", "1.2.840.113549.1.9.1": "E", "0.9.2342.19200300.100.1.25": "DC",
    ]

    private static func oidString(_ oid: [UInt8]) -> String {
        var arcs: [UInt64] = []
        var value: UInt64 = 0
        for byte in oid {
            value = (value << 7) | UInt64(byte & 0x7F)
            if byte & 0x80 == 0 {
                if arcs.isEmpty {
                    let first = min(value / 40, 2)
                    arcs.append(first)
                    arcs.append(value - first * 40)
                } else {
                    arcs.append(value)
                }
                value = 0
            }
        }
        return arcs.map { String($0) }.joined(separator: ".")
    }
}

struct DerReader {
    struct Malformed: Error {}
    struct Tlv {
        let tag: UInt8
        let raw: [UInt8]
        let content: [UInt8]
    }

    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    var isEmpty: Bool { position >= bytes.count }
    var peekTag: UInt8? { isEmpty ? nil : bytes[position] }

    mutating func next() throws -> Tlv {
        guard position + 2 <= bytes.count else { throw Malformed() }
        let start = position
        let tag = bytes[position]
        var p = position + 1
        var length = Int(bytes[p])
        p += 1
        if length >= 0x80 {
            let count = length & 0x7F
            guard (1...3).contains(count), p + count <= bytes.count else { throw Malformed() }
            length = 0
            for _ in 0..<count {
                length = (length << 8) | Int(bytes[p])
                p += 1
            }
        }
        guard p + length <= bytes.count else { throw Malformed() }
        position = p + length
        return Tlv(tag: tag, raw: Array(bytes[start..<position]), content: Array(bytes[p..<position]))
    }

    mutating func expect(_ tag: UInt8) throws -> DerReader {
        let tlv = try next()
        guard tlv.tag == tag else { throw Malformed() }
        return DerReader(tlv.content)
    }
}
