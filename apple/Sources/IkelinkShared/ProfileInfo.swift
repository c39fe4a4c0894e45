import Foundation

/// What the app and the extension need to know about a profile before Ikelink sees it: the gateway's address
/// (`NETunnelProviderProtocol.serverAddress`), the authentication method and whether the secret is in the
/// profile (else it comes from the Keychain), and whether it asks for the kill switch (`includeAllNetworks`).
///
/// A small line scanner, not a TOML parser: it reads `[table]` headers and `key = "string"` / `key = true`
/// lines (dotted keys too). Ikelink parses the profile itself on `connect` and reports every error; this only
/// reads the few values the shell acts on. It errs on the safe side: any `kill_switch = true` outside a
/// comment counts, wherever it is written (an inline table included).
public struct IkelinkProfileInfo: Equatable, Sendable {
    /// `gateway.address`.
    public var gatewayAddress: String?
    /// `auth.method` ("psk", "cert" or "eap"); nil if not written (Ikelink then infers it).
    public var authMethod: String?
    /// `auth.psk`, `auth.psk_file`, `auth.password` or `auth.password_file` is in the profile.
    public var secretInProfile: Bool
    /// `tunnel.kill_switch = true`: the configuration must have `includeAllNetworks` set.
    public var killSwitch: Bool

    /// Whether the profile needs a PSK or EAP password from the Keychain (`ConnectOptions.secret`).
    public var needsSecret: Bool {
        guard !secretInProfile else { return false }
        return authMethod == "psk" || authMethod == "eap"
    }

    public init(toml: String) {
        var table = ""
        var values: [String: String] = [:]
        var killSwitch = false
        for rawLine in toml.components(separatedBy: .newlines) {
            let line = Self.stripComment(rawLine).trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if Self.isKillSwitchOn(line) { killSwitch = true }
            if line.hasPrefix("[") {
                let name = line.trimmingCharacters(in: CharacterSet(charactersIn: "[] \t"))
                table = name.replacingOccurrences(of: " ", with: "")
                continue
            }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].replacingOccurrences(of: " ", with: "").replacingOccurrences(of: "\"", with: "")
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            values[table.isEmpty ? key : "\(table).\(key)"] = Self.scalar(value)
        }
        gatewayAddress = values["gateway.address"]
        authMethod = values["auth.method"]
        secretInProfile = ["auth.psk", "auth.psk_file", "auth.password", "auth.password_file"].contains {
            values[$0] != nil
        }
        self.killSwitch = killSwitch
    }

    /// The line up to a `#` that is not inside a string.
    private static func stripComment(_ line: String) -> String {
        var quote: Character?
        var escaped = false
        for (i, c) in zip(line.indices, line) {
            if let q = quote {
                if escaped { escaped = false } else if c == "\\" && q == "\"" { escaped = true } else if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "#" {
                return String(line[..<i])
            }
        }
        return line
    }

    private static func isKillSwitchOn(_ line: String) -> Bool {
        line.range(of: #"kill_switch"?\s*=\s*true\b"#, options: .regularExpression) != nil
    }

    /// A basic or literal string's content (escapes `\"` and `\\` only), `true`/`false`, or the raw text.
    private static func scalar(_ value: String) -> String {
        guard let first = value.first, first == "\"" || first == "'" else {
            return value
        }
        var out = ""
        var escaped = false
        for c in value.dropFirst() {
            if escaped {
                out.append(c)
                escaped = false
            } else if c == "\\" && first == "\"" {
                escaped = true
            } else if c == first {
                break
            } else {
                out.append(c)
            }
        }
        return out
    }
}
