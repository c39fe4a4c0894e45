import Foundation
@_exported import IkelinkFFI
@_exported import IkelinkShared
import NetworkExtension
import os.log

/// Failures of the shell itself (Ikelink's own failures arrive as `VpnError`).
public enum IkelinkTunnelError: Error {
    /// Neither the start options nor the provider configuration carry a profile.
    case noProfile
    /// The session ended before the tunnel came up, without an error (a `disconnect` meanwhile).
    case closedBeforeTunnelUp
    /// A Keychain item could not be used.
    case keychain(String)
}

extension IkelinkTunnelError: LocalizedError {
    public var errorDescription: String? {
        switch self {
        case .noProfile:
            return "no Ikelink profile in the start options or the provider configuration"
        case .closedBeforeTunnelUp:
            return "the session ended before the tunnel came up"
        case .keychain(let reason):
            return "Keychain: \(reason)"
        }
    }
}

/// A `NEPacketTunnelProvider` that owns one Ikelink `VpnClient`. Subclass it in your Packet Tunnel extension
/// (and name the subclass in `NSExtensionPrincipalClass`), overriding what you need: `profileToml`,
/// `connectOptions` (Keychain identity, trust), `tunnelNetworkSettings`, `handle(event:)`.
///
/// - `startTunnel` completes on the first `TunnelUp` (the utun carries traffic), or with the typed `VpnError`
///   that ended the first attempt; `stopTunnel` sends our Delete and completes on `Closed`.
/// - The TUN: `setTunnelNetworkSettings` for the negotiated settings, then the utun descriptor
///   (`UtunDescriptor`); Ikelink handles the utun framing.
/// - No `SocketProtector` on Apple platforms: a packet tunnel provider's own sockets never enter its tunnel
///   (NetworkExtension routes the provider process outside it, and `tunnelRemoteAddress` keeps the gateway
///   reachable), so Ikelink's UDP sockets need no protection.
/// - Threads: Ikelink calls the listener and the TUN provider on its runtime threads; nothing here runs on,
///   or waits on, the main thread.
open class IkelinkPacketTunnelProvider: NEPacketTunnelProvider {
    private enum Phase {
        case idle
        case starting((Error?) -> Void)
        case running
        /// The start was refused; the session is being closed.
        case failed
        case stopping(() -> Void)
    }

    private let lock = NSLock()
    private var client: VpnClient? // guarded by lock
    private var phase = Phase.idle // guarded by lock
    private var pathMonitor: PathMonitor? // guarded by lock
    private let log = OSLog(subsystem: "dev.ikelink.tunnel", category: "provider")
    /// How long `stopTunnel` waits for the gateway to acknowledge our Delete.
    private let stopTimeout: TimeInterval = 5

    // MARK: Hooks for the app

    /// The profile TOML (the CLI's format): `options["profile"]` from `startVPNTunnel(options:)`, else
    /// `providerConfiguration["profile"]` (keep secrets such as a PSK in the Keychain, not there: see `secret`).
    open func profileToml(options: [String: NSObject]?) -> String? {
        if let profile = options?["profile"] as? String { return profile }
        return (protocolConfiguration as? NETunnelProviderProtocol)?.providerConfiguration?["profile"] as? String
    }

    /// Options for `connect`: `ClientIdentity.keystore` from `KeychainSigner.clientIdentity`,
    /// `GatewayTrust.platform(evaluator: SecTrustEvaluator())`, MTU, reconnects.
    open func connectOptions(options: [String: NSObject]?) throws -> ConnectOptions {
        ConnectOptions()
    }

    /// The PSK or EAP password (`ConnectOptions.secret`, unless `connectOptions` set it): by default the Keychain
    /// item the configuration's `passwordReference` points to, which the app stored with `IkelinkSecretStore`
    /// in a keychain access group the extension shares; nil when the profile carries its own secret (giving
    /// both is refused) or there is no reference. A Keychain failure stops the start with
    /// `IkelinkSecretError` (it never contains the secret).
    open func secret(profile: IkelinkProfileInfo, options: [String: NSObject]?) throws -> String? {
        guard !profile.secretInProfile, let reference = protocolConfiguration.passwordReference else { return nil }
        return try IkelinkSecretStore.secret(persistentReference: reference)
    }

    /// The postquantum preshared key (RFC 8784, at least 32 bytes) for a profile whose `[ppk]` has an `id` but no
    /// secret (`profile.needsPpkSecret`): override to read it from the Keychain. nil: the profile must carry it.
    open func ppkSecret(profile: IkelinkProfileInfo, options: [String: NSObject]?) throws -> Data? {
        nil
    }

    /// Ikelink's log level for the unified log (`.off`: no log sink).
    open var logLevel: LogLevel { .info }

    /// Route IPv6 into the tunnel when the gateway gave an IPv4 full tunnel but no IPv6 address, so IPv6
    /// traffic cannot leave outside the VPN (Ikelink drops it: no Child SA covers it).
    open var blockUnassignedIpv6: Bool { true }

    /// Every event, in order, on an Ikelink thread (after the provider has acted on it). Return quickly.
    open func handle(event: VpnEvent) {}

    /// The network settings for what the gateway assigned; override to adjust (excluded routes, proxies).
    open func tunnelNetworkSettings(for settings: TunnelSettings) -> NEPacketTunnelNetworkSettings {
        let network = NEPacketTunnelNetworkSettings(tunnelRemoteAddress: settings.gateway)
        let v4Routes = settings.routes.filter { !$0.address.contains(":") }
        let v6Routes = settings.routes.filter { $0.address.contains(":") }
        let fullIpv4 = v4Routes.contains { $0.prefixLength == 0 }
        if let v4 = settings.ipv4 {
            let ipv4 = NEIPv4Settings(addresses: [v4.address], subnetMasks: [Self.netmask(v4.prefixLength)])
            ipv4.includedRoutes = v4Routes.map {
                $0.prefixLength == 0
                    ? NEIPv4Route.default()
                    : NEIPv4Route(destinationAddress: $0.address, subnetMask: Self.netmask($0.prefixLength))
            }
            // The profile's `tunnel.exclude`.
            ipv4.excludedRoutes = settings.excludedRoutes.filter { !$0.address.contains(":") }.map {
                NEIPv4Route(destinationAddress: $0.address, subnetMask: Self.netmask($0.prefixLength))
            }
            network.ipv4Settings = ipv4
        }
        if let v6 = settings.ipv6 {
            let ipv6 = NEIPv6Settings(addresses: [v6.address], networkPrefixLengths: [NSNumber(value: v6.prefixLength)])
            ipv6.includedRoutes = v6Routes.map {
                $0.prefixLength == 0
                    ? NEIPv6Route.default()
                    : NEIPv6Route(destinationAddress: $0.address, networkPrefixLength: NSNumber(value: $0.prefixLength))
            }
            ipv6.excludedRoutes = settings.excludedRoutes.filter { $0.address.contains(":") }.map {
                NEIPv6Route(destinationAddress: $0.address, networkPrefixLength: NSNumber(value: $0.prefixLength))
            }
            network.ipv6Settings = ipv6
        } else if blockUnassignedIpv6 && fullIpv4 {
            // A unique local address of our own, so the system accepts the IPv6 default route.
            let ipv6 = NEIPv6Settings(addresses: ["fd00::fd02:1:1"], networkPrefixLengths: [128])
            ipv6.includedRoutes = [NEIPv6Route.default()]
            network.ipv6Settings = ipv6
        }
        if !settings.dnsServers.isEmpty {
            let dns = NEDNSSettings(servers: settings.dnsServers)
            if !settings.searchDomains.isEmpty { dns.searchDomains = settings.searchDomains }
            // Full tunnel: every query goes to the gateway's servers. Split tunnel: only its domains, if any.
            dns.matchDomains = fullIpv4 ? [""] : (settings.searchDomains.isEmpty ? nil : settings.searchDomains)
            network.dnsSettings = dns
        }
        network.mtu = NSNumber(value: settings.mtu)
        return network
    }

    // MARK: NEPacketTunnelProvider

    override open func startTunnel(options: [String: NSObject]?, completionHandler: @escaping (Error?) -> Void) {
        if logLevel != .off {
            do { try setLogger(level: logLevel, sink: OSLogSink()) } catch {
                os_log("cannot install the log sink: %{public}@", log: log, type: .error, "\(error)")
            }
        }
        guard let profile = profileToml(options: options) else {
            completionHandler(IkelinkTunnelError.noProfile)
            return
        }
        do {
            let info = try IkelinkProfileInfo(toml: profile)
            let client = try currentClient()
            locked { phase = .starting(completionHandler) }
            var connect = try connectOptions(options: options)
            // The kill switch is the system's on Apple platforms (`includeAllNetworks`, set by the app when it
            // saves the configuration; the extension cannot set it): the core refuses a `kill_switch = true`
            // profile unless the configuration has it.
            connect.killSwitchByOs = protocolConfiguration.includeAllNetworks
            if connect.secret == nil {
                connect.secret = try secret(profile: info, options: options)
            }
            if connect.ppkSecret == nil, info.needsPpkSecret {
                connect.ppkSecret = try ppkSecret(profile: info, options: options)
            }
            try client.connect(profileToml: profile, options: connect)
        } catch {
            // Profile, options or credentials refused before anything touched the network.
            os_log("connect refused: %{public}@", log: log, type: .error, "\(error)")
            locked { phase = .idle }
            completionHandler(error)
            return
        }
        let monitor = PathMonitor { [weak self] in self?.networkChanged() }
        locked {
            pathMonitor?.cancel()
            pathMonitor = monitor
        }
        monitor.start()
    }

    override open func stopTunnel(with reason: NEProviderStopReason, completionHandler: @escaping () -> Void) {
        os_log("stopping (reason %d)", log: log, type: .info, reason.rawValue)
        let (client, previous): (VpnClient?, Phase) = locked {
            pathMonitor?.cancel()
            pathMonitor = nil
            let previous = phase
            phase = .stopping(completionHandler)
            return (self.client, previous)
        }
        if case .starting(let start) = previous {
            // Stopped while starting: the start is over too.
            start(IkelinkTunnelError.closedBeforeTunnelUp)
        }
        do {
            try client?.disconnect()
        } catch {
            // NotConnected: nothing to close.
            takeStop()?()
            return
        }
        if client == nil {
            takeStop()?()
            return
        }
        // The gateway may not answer our Delete: complete anyway after a while.
        DispatchQueue.global().asyncAfter(deadline: .now() + stopTimeout) { [weak self] in
            self?.takeStop()?()
        }
    }

    /// The device is about to sleep. Nothing is torn down: the session stays as it is (the system may suspend
    /// the extension meanwhile, and the gateway's DPD may drop our SAs if the sleep is long).
    override open func sleep(completionHandler: @escaping () -> Void) {
        os_log("going to sleep", log: log, type: .info)
        completionHandler()
    }

    /// The device woke up: reset the path, as Firezone's provider does. Ikelink is told the network changed
    /// (`networkChanged()`), so it checks at once: with MOBIKE it sends UPDATE_SA_ADDRESSES from the current
    /// address (the gateway's answer proves the SAs are alive; no answer ends in a reconnect), without MOBIKE it
    /// reconnects. Ikelink's own timers cannot notice the sleep: Rust's `Instant` does not advance while an Apple
    /// device sleeps, so DPD and lifetimes resume as if no time had passed.
    override open func wake() {
        os_log("woke up: checking the path", log: log, type: .info)
        if let monitor = locked({ pathMonitor }) {
            monitor.reset() // calls networkChanged() on the monitor's queue if the path is usable
        } else {
            networkChanged()
        }
    }

    /// The app's messages (`sendProviderMessage`): any message is answered with the status as JSON
    /// (`state`, `virtualIpv4`, `espSuite`, counters, `lastError`).
    override open func handleAppMessage(_ messageData: Data, completionHandler: ((Data?) -> Void)?) {
        guard let client = locked({ self.client }), let status = try? client.status() else {
            completionHandler?(nil)
            return
        }
        var json: [String: Any] = [
            "state": "\(status.state)",
            "bytesIn": status.stats.bytesIn,
            "bytesOut": status.stats.bytesOut,
            "packetsIn": status.stats.packetsIn,
            "packetsOut": status.stats.packetsOut,
            "packetsDropped": status.stats.packetsDropped,
        ]
        if let details = status.details {
            json["gateway"] = details.gateway
            if let ip = details.virtualIpv4 { json["virtualIpv4"] = ip }
            json["ikeSuite"] = details.ikeSuite
            json["espSuite"] = details.espSuite
        }
        if let error = status.lastError { json["lastError"] = "\(error)" }
        completionHandler?(try? JSONSerialization.data(withJSONObject: json))
    }

    // MARK: Session

    private func currentClient() throws -> VpnClient {
        if let client = locked({ self.client }) { return client }
        let client = try VpnClient(
            listener: ListenerAdapter(self),
            tunProvider: TunAdapter(self),
            socketProtector: nil
        )
        locked { self.client = client }
        return client
    }

    private func networkChanged() {
        do {
            try locked({ self.client })?.networkChanged()
        } catch VpnError.NotConnected {
            // Between sessions: nothing to move.
        } catch {
            os_log("networkChanged failed: %{public}@", log: log, type: .error, "\(error)")
        }
    }

    /// An Ikelink runtime thread.
    fileprivate func received(_ event: VpnEvent) {
        switch event {
        case .stateChanged(let state):
            if state == .reconnecting {
                reasserting = true
            } else if state == .connected {
                reasserting = false
            }
        case .connected(let details):
            os_log("connected to %{public}@ (%{public}@ / %{public}@)", log: log, type: .info,
                   details.gateway, details.ikeSuite, details.espSuite)
        case .tunnelUp(let interface, let mtu):
            os_log("tunnel up on %{public}@, MTU %d", log: log, type: .info, interface, Int(mtu))
            if let start = takeStart(next: .running) { start(nil) }
        case .rekeyed(let espSuite):
            os_log("Child SA rekeyed (%{public}@)", log: log, type: .info, espSuite)
        case .reconnecting(let attempt, let delayMs, let reason):
            os_log("reconnecting (attempt %d in %d ms): %{public}@", log: log, type: .info,
                   Int(attempt), Int(delayMs), "\(reason)")
            reasserting = true
            // The first attempt failed: report its error now rather than leave startTunnel hanging.
            if let start = takeStart(next: .failed) {
                start(reason)
                try? locked({ self.client })?.disconnect()
            }
        case .stats:
            break
        case .closed(let error):
            closed(error)
        }
        handle(event: event)
    }

    private func closed(_ error: VpnError?) {
        if let error { os_log("session closed: %{public}@", log: log, type: .error, "\(error)") }
        let previous: Phase = locked {
            let previous = phase
            phase = .idle
            pathMonitor?.cancel()
            pathMonitor = nil
            return previous
        }
        switch previous {
        case .starting(let start):
            start(error ?? IkelinkTunnelError.closedBeforeTunnelUp)
        case .stopping(let stop):
            stop()
        case .running:
            // The session ended on its own (reconnection off or given up): let the system tear down.
            cancelTunnelWithError(error)
        case .idle, .failed:
            break
        }
    }

    /// The pending start completion, if any; the phase moves to `next`.
    private func takeStart(next: Phase) -> ((Error?) -> Void)? {
        locked {
            guard case .starting(let start) = phase else { return nil }
            phase = next
            return start
        }
    }

    /// The pending stop completion, if any (at most once).
    private func takeStop() -> (() -> Void)? {
        locked {
            guard case .stopping(let stop) = phase else { return nil }
            phase = .idle
            return stop
        }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// `255.255.255.0` for 24.
    static func netmask(_ prefixLength: UInt8) -> String {
        let bits: UInt32 = prefixLength == 0 ? 0 : ~UInt32(0) << (32 - UInt32(min(prefixLength, 32)))
        return "\(bits >> 24 & 0xFF).\(bits >> 16 & 0xFF).\(bits >> 8 & 0xFF).\(bits & 0xFF)"
    }
}

/// Ikelink's events to the provider (weakly held: the client belongs to the provider).
private final class ListenerAdapter: VpnListener, @unchecked Sendable {
    private weak var provider: IkelinkPacketTunnelProvider?

    init(_ provider: IkelinkPacketTunnelProvider) {
        self.provider = provider
    }

    func onEvent(event: VpnEvent) throws {
        provider?.received(event)
    }
}

/// `setTunnelNetworkSettings`, made synchronous for Ikelink (it calls from a blocking-pool thread, so waiting
/// here stalls no runtime worker), then the utun descriptor.
private final class TunAdapter: TunProvider, @unchecked Sendable {
    private weak var provider: IkelinkPacketTunnelProvider?
    private let timeout: DispatchTimeInterval = .seconds(30)

    init(_ provider: IkelinkPacketTunnelProvider) {
        self.provider = provider
    }

    func openTun(settings: TunnelSettings) throws -> Int32 {
        guard let provider else { throw CallbackError.Failed(reason: "the tunnel provider is gone") }
        let network = provider.tunnelNetworkSettings(for: settings)
        let done = DispatchSemaphore(value: 0)
        let failure = Box<Error?>(nil)
        provider.setTunnelNetworkSettings(network) { error in
            failure.value = error
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success else {
            throw CallbackError.Failed(reason: "setTunnelNetworkSettings did not complete in time")
        }
        if let error = failure.value {
            throw CallbackError.Failed(reason: "setTunnelNetworkSettings failed: \(error.localizedDescription)")
        }
        guard let utun = UtunDescriptor.find() else {
            throw CallbackError.Failed(reason: "no utun descriptor in this process")
        }
        return utun.fd
    }
}

/// A value handed from a completion handler to the thread waiting for it (the semaphore orders the accesses).
private final class Box<T>: @unchecked Sendable {
    var value: T

    init(_ value: T) {
        self.value = value
    }
}

/// Ikelink's log lines (never secrets) to the unified log, subsystem `dev.ikelink`, category = Rust target.
public final class OSLogSink: LogSink, @unchecked Sendable {
    public init() {}

    public func log(level: LogLevel, target: String, message: String) throws {
        let type: OSLogType
        switch level {
        case .error: type = .error
        case .warn: type = .default
        case .info: type = .info
        case .debug, .trace: type = .debug
        case .off: return
        }
        os_log("%{public}@", log: OSLog(subsystem: "dev.ikelink", category: target), type: type, message)
    }
}
