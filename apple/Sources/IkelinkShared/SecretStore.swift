import Foundation
import Security

/// The profile's PSK or EAP password in the Keychain, written by the app and read by the packet tunnel extension
/// for `ConnectOptions.secret`. Both must be entitled to the same keychain access group
/// (`keychain-access-groups`, e.g. `$(AppIdentifierPrefix)com.example.app.shared`); the VPN configuration
/// carries only the item's persistent reference (`NEVPNProtocol.passwordReference`), never the secret itself
/// (`providerConfiguration` is readable by anyone who can read the VPN preferences).
///
/// The items are generic passwords (service `dev.ikelink.secret` by default, one account per configuration),
/// readable after the first unlock (an on-demand tunnel may start while the device is locked), never synced
/// nor restored to another device. On macOS they live in the data protection keychain, where access groups
/// work as on iOS.
public struct IkelinkSecretStore: Sendable {
    /// The keychain access group shared by the app and the extension (with the team prefix); nil: the app's
    /// default group, which the extension cannot read unless it shares it.
    public let accessGroup: String?
    public let service: String

    public init(accessGroup: String?, service: String = "dev.ikelink.secret") {
        self.accessGroup = accessGroup
        self.service = service
    }

    /// Stores `secret` for `account` (replacing what was there) and returns the persistent reference to put
    /// into `NEVPNProtocol.passwordReference`.
    @discardableResult
    public func store(_ secret: String, account: String) throws -> Data {
        var query = baseQuery(account: account)
        let data = Data(secret.utf8)
        let attributes: [String: Any] = [
            kSecValueData as String: data,
            kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
        ]
        var status = SecItemUpdate(query as CFDictionary, attributes as CFDictionary)
        if status == errSecItemNotFound {
            var add = query
            add.merge(attributes) { _, new in new }
            status = SecItemAdd(add as CFDictionary, nil)
        }
        guard status == errSecSuccess else { throw IkelinkSecretError(status, "storing the secret") }
        query[kSecReturnPersistentRef as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitOne
        var result: CFTypeRef?
        status = SecItemCopyMatching(query as CFDictionary, &result)
        guard status == errSecSuccess, let reference = result as? Data else {
            throw IkelinkSecretError(status, "reading back the secret's reference")
        }
        return reference
    }

    /// Removes the secret for `account` (nothing there is not an error).
    public func delete(account: String) throws {
        let status = SecItemDelete(baseQuery(account: account) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw IkelinkSecretError(status, "deleting the secret")
        }
    }

    /// The secret a persistent reference (`passwordReference`) points to. In the extension: the item must be in
    /// an access group the extension is entitled to.
    public static func secret(persistentReference: Data) throws -> String {
        var query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecValuePersistentRef as String: persistentReference,
            kSecReturnData as String: true,
            kSecMatchLimit as String: kSecMatchLimitOne,
        ]
        #if os(macOS)
        query[kSecUseDataProtectionKeychain as String] = true
        #endif
        var result: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &result)
        guard status == errSecSuccess, let data = result as? Data else {
            throw IkelinkSecretError(status, "reading the secret")
        }
        guard let secret = String(data: data, encoding: .utf8) else {
            throw IkelinkSecretError(errSecDecode, "reading the secret (not UTF-8)")
        }
        return secret
    }

    private func baseQuery(account: String) -> [String: Any] {
        var query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
            kSecAttrSynchronizable as String: false,
        ]
        if let accessGroup { query[kSecAttrAccessGroup as String] = accessGroup }
        #if os(macOS)
        query[kSecUseDataProtectionKeychain as String] = true
        #endif
        return query
    }
}

/// A Keychain call failed (`status`: the `OSStatus`). The message never contains the secret.
public struct IkelinkSecretError: Error, LocalizedError, Sendable {
    public let status: OSStatus
    public let operation: String

    init(_ status: OSStatus, _ operation: String) {
        self.status = status
        self.operation = operation
    }

    public var errorDescription: String? {
        let reason = SecCopyErrorMessageString(status, nil) as String? ?? "OSStatus \(status)"
        return "Keychain: \(operation) failed: \(reason)"
    }
}
