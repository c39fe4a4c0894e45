import IkelinkTunnel
import NetworkExtension

/// The packet tunnel extension's principal class (Info.plist `NSExtensionPrincipalClass`). Everything is in
/// `IkelinkPacketTunnelProvider` (apple/Sources): the profile from `providerConfiguration`, the PSK or EAP
/// password from the Keychain item `passwordReference` points to, `kill_switch` checked against
/// `includeAllNetworks`, sleep and wake. Only the gateway's trust is decided here.
final class PacketTunnelProvider: IkelinkPacketTunnelProvider {
    override func connectOptions(options: [String: NSObject]?) throws -> ConnectOptions {
        var connect = ConnectOptions()
        // A gateway with a certificate: the system's trust store judges its chain (Ikelink checks that the
        // certificate names the gateway). A PSK gateway needs no trust, and Ikelink refuses one given; so does a
        // profile naming `gateway.ca` files (an app has none: give `.caCertificates(pem:)` from the app group).
        let info = try profileToml(options: options).map(IkelinkProfileInfo.init(toml:))
        if let info, info.authMethod != "psk" {
            connect.gatewayTrust = .platform(evaluator: SecTrustEvaluator())
        }
        return connect
    }
}
