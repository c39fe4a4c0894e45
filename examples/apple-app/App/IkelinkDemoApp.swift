import IkelinkShared
import NetworkExtension
import SwiftUI
import UniformTypeIdentifiers

/// A minimal Ikelink VPN app: import a profile (the `ikelink` TOML format), save it as this app's VPN
/// configuration, connect and disconnect. The tunnel itself runs in the packet tunnel extension (`Tunnel/`).
@main
struct IkelinkDemoApp: App {
    @StateObject private var tunnel = TunnelController()

    var body: some Scene {
        WindowGroup {
            ContentView().environmentObject(tunnel)
        }
    }
}

struct ContentView: View {
    @EnvironmentObject private var tunnel: TunnelController
    @State private var importing = false
    @State private var secret = ""

    var body: some View {
        VStack(spacing: 16) {
            Text(tunnel.profileName ?? "No profile").font(.headline)
            Text("Status: \(tunnel.statusText)")
            SecureField("PSK or EAP password (if the profile has none)", text: $secret)
                .textFieldStyle(.roundedBorder)
            Button("Import profile…") { importing = true }
            HStack(spacing: 24) {
                Button("Connect") { tunnel.connect() }
                    .disabled(!tunnel.canConnect)
                Button("Disconnect") { tunnel.disconnect() }
                    .disabled(!tunnel.canDisconnect)
            }
            if let message = tunnel.message {
                Text(message).font(.footnote).multilineTextAlignment(.center)
            }
        }
        .padding()
        .frame(maxWidth: 420)
        .fileImporter(isPresented: $importing, allowedContentTypes: TunnelController.profileTypes) { result in
            switch result {
            case .success(let url):
                let typed = secret
                secret = ""
                Task { await tunnel.importProfile(from: url, secret: typed) }
            case .failure(let error):
                tunnel.message = error.localizedDescription
            }
        }
    }
}

enum DemoError: LocalizedError {
    case secretNeeded

    var errorDescription: String? {
        switch self {
        case .secretNeeded: return "the profile has no PSK or EAP password: type it before importing"
        }
    }
}

/// Owns this app's one VPN configuration (`NETunnelProviderManager`) and follows its status.
@MainActor
final class TunnelController: ObservableObject {
    @Published private(set) var profileName: String?
    @Published private(set) var status: NEVPNStatus = .invalid
    @Published var message: String?

    private var manager: NETunnelProviderManager?
    private var statusObserver: NSObjectProtocol?

    /// `ikelink` profiles (`.toml`), or any text file.
    static let profileTypes: [UTType] = [UTType(filenameExtension: "toml") ?? .plainText, .plainText]
    /// The extension's bundle identifier: this app's, plus `.tunnel`.
    static let tunnelBundleIdentifier = (Bundle.main.bundleIdentifier ?? "dev.ikelink.demo") + ".tunnel"
    /// The keychain access group the app and the extension share (Info.plist `IkelinkKeychainGroup`, which
    /// expands `$(AppIdentifierPrefix)`).
    static let keychainGroup = Bundle.main.object(forInfoDictionaryKey: "IkelinkKeychainGroup") as? String

    init() {
        Task { await load() }
    }

    var statusText: String {
        switch status {
        case .invalid: return "not configured"
        case .disconnected: return "disconnected"
        case .connecting: return "connecting"
        case .connected: return "connected"
        case .reasserting: return "reconnecting"
        case .disconnecting: return "disconnecting"
        @unknown default: return "unknown"
        }
    }

    var canConnect: Bool { manager != nil && (status == .disconnected || status == .invalid) }
    var canDisconnect: Bool { status == .connected || status == .connecting || status == .reasserting }

    func load() async {
        do {
            if let existing = try await NETunnelProviderManager.loadAllFromPreferences().first {
                use(existing)
            }
        } catch {
            message = error.localizedDescription
        }
    }

    /// Saves the profile as the VPN configuration: the TOML in `providerConfiguration`, a missing PSK or EAP
    /// password in the shared Keychain (`passwordReference`), `kill_switch` as `includeAllNetworks`.
    func importProfile(from url: URL, secret: String) async {
        do {
            let scoped = url.startAccessingSecurityScopedResource()
            defer { if scoped { url.stopAccessingSecurityScopedResource() } }
            let toml = try String(contentsOf: url, encoding: .utf8)
            let info = try IkelinkProfileInfo(toml: toml)
            let address = info.gatewayAddress
            let name = url.deletingPathExtension().lastPathComponent

            let proto = NETunnelProviderProtocol()
            proto.providerBundleIdentifier = Self.tunnelBundleIdentifier
            proto.serverAddress = address
            proto.providerConfiguration = ["profile": toml]
            proto.includeAllNetworks = info.killSwitch
            if info.needsSecret {
                guard !secret.isEmpty else { throw DemoError.secretNeeded }
                let store = IkelinkSecretStore(accessGroup: Self.keychainGroup)
                proto.passwordReference = try store.store(secret, account: name)
            }

            let manager = self.manager ?? NETunnelProviderManager()
            manager.localizedDescription = name
            manager.protocolConfiguration = proto
            manager.isEnabled = true
            try await manager.saveToPreferences()
            // Reload before starting: a freshly saved configuration cannot be started otherwise.
            try await manager.loadFromPreferences()
            use(manager)
            message = "Saved \(name)"
        } catch {
            message = error.localizedDescription
        }
    }

    func connect() {
        do {
            try manager?.connection.startVPNTunnel()
        } catch {
            message = error.localizedDescription
        }
    }

    func disconnect() {
        manager?.connection.stopVPNTunnel()
    }

    private func use(_ manager: NETunnelProviderManager) {
        self.manager = manager
        profileName = manager.localizedDescription
        status = manager.connection.status
        if let statusObserver { NotificationCenter.default.removeObserver(statusObserver) }
        statusObserver = NotificationCenter.default.addObserver(
            forName: .NEVPNStatusDidChange, object: manager.connection, queue: .main
        ) { [weak self] _ in
            Task { @MainActor in
                guard let self, let manager = self.manager else { return }
                self.status = manager.connection.status
            }
        }
    }
}
