import Foundation
import Network

/// Tells Ikelink when the path under the tunnel changes (Wi-Fi <-> cellular, another gateway), so it moves the
/// SAs (MOBIKE) or reconnects. Our own utun (type `.other`) is left out of the comparison. [onChange] runs on
/// the monitor's queue, never the main thread.
final class PathMonitor: @unchecked Sendable {
    private let monitor = NWPathMonitor()
    private let queue = DispatchQueue(label: "dev.ikelink.path-monitor")
    private let onChange: @Sendable () -> Void
    /// The last path's fingerprint; nil before the first (baseline) update. Queue only.
    private var last: String?

    init(onChange: @escaping @Sendable () -> Void) {
        self.onChange = onChange
    }

    func start() {
        monitor.pathUpdateHandler = { [weak self] path in self?.update(path) }
        monitor.start(queue: queue)
    }

    func cancel() {
        monitor.cancel()
    }

    /// Resets the path after a wake from sleep: the current path becomes the baseline and, if it is usable,
    /// [onChange] runs at once even when the path looks the same as before the sleep (the NAT mapping, the
    /// gateway's SAs or the address behind the same interface may not have survived it). On the monitor's
    /// queue, so it is ordered with the path updates and one change is not reported twice.
    func reset() {
        queue.async { [weak self] in
            guard let self else { return }
            let path = self.monitor.currentPath
            self.last = Self.fingerprint(path)
            guard path.status == .satisfied else { return } // the next update reports the usable path
            self.onChange()
        }
    }

    private func update(_ path: NWPath) {
        let now = Self.fingerprint(path)
        let before = last
        last = now
        guard let before, before != now, path.status == .satisfied else { return }
        onChange()
    }

    private static func fingerprint(_ path: NWPath) -> String {
        let interfaces = path.availableInterfaces.filter { $0.type != .other }.map { "\($0.name):\($0.type)" }
        let gateways = path.gateways.map { "\($0)" }
        return "\(path.status)|\(interfaces.joined(separator: ","))|\(gateways.joined(separator: ","))"
            + "|v4=\(path.supportsIPv4)|v6=\(path.supportsIPv6)"
    }
}
