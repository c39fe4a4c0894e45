import Foundation
import IkelinkFFI

/// What the app and the extension need to know about a profile before connecting: the gateway's address
/// (`NETunnelProviderProtocol.serverAddress`), the authentication method and whether the secret is in the
/// profile (else it comes from the Keychain), and whether it asks for the kill switch (`includeAllNetworks`).
/// Read by Ikelink's own profile parser (`profileFacts`), the one `connect` uses: the shell never parses TOML.
public struct IkelinkProfileInfo: Equatable, Sendable {
    /// `gateway.address`.
    public var gatewayAddress: String
    /// `auth.method`: "psk", "cert" or "eap".
    public var authMethod: String
    /// `auth.psk`, `auth.psk_file`, `auth.password` or `auth.password_file` is in the profile.
    public var secretInProfile: Bool
    /// `tunnel.kill_switch = true`: the configuration must have `includeAllNetworks` set.
    public var killSwitch: Bool
    /// `ppk.id`: the postquantum preshared key (RFC 8784) the profile uses, if any.
    public var ppkId: String?
    /// `ppk.secret` or `ppk.secret_file` is in the profile.
    public var ppkSecretInProfile: Bool

    /// Whether the profile needs its PPK from the Keychain (`ConnectOptions.ppkSecret`).
    public var needsPpkSecret: Bool { ppkId != nil && !ppkSecretInProfile }

    /// Whether the profile needs a PSK or EAP password from the Keychain (`ConnectOptions.secret`).
    public var needsSecret: Bool {
        !secretInProfile && (authMethod == "psk" || authMethod == "eap")
    }

    /// Throws `VpnError.InvalidProfile` (naming the field) for a profile `connect` would refuse for its form.
    public init(toml: String) throws {
        let facts = try profileFacts(profileToml: toml)
        gatewayAddress = facts.gatewayAddress
        authMethod = facts.authMethod
        secretInProfile = facts.secretInProfile
        killSwitch = facts.killSwitch
        ppkId = facts.ppkId
        ppkSecretInProfile = facts.ppkSecretInProfile
    }
}
