import Darwin

/// The utun descriptor NetworkExtension opened for this packet tunnel provider, found the way WireGuard's
/// Apple app finds it: scan the process's descriptors for a kernel-control socket (`AF_SYSTEM`) that answers
/// `UTUN_OPT_IFNAME` with a `utun` name. Ikelink reads and writes it directly (its packets carry the 4-byte
/// address-family header, which Ikelink's core adds and strips on Apple platforms); `packetFlow` stays unused.
///
/// The descriptor belongs to the system: Ikelink works on a duplicate, and nobody here closes it.
public enum UtunDescriptor {
    /// `AF_SYSTEM`, `SYSPROTO_CONTROL` and `UTUN_OPT_IFNAME` from <sys/socket.h>, <sys/kern_control.h> and
    /// <net/if_utun.h>, spelled out: the iOS SDK does not export the last two to Swift.
    private static let afSystem: sa_family_t = 32
    private static let sysprotoControl: Int32 = 2
    private static let utunOptIfname: Int32 = 2
    /// `IFNAMSIZ`.
    private static let ifNameSize = 16

    /// The utun descriptor and its interface name (e.g. `utun4`), or nil if there is none (yet).
    public static func find() -> (fd: Int32, name: String)? {
        for fd: Int32 in 0...1024 {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let status = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
            }
            guard status == 0, storage.ss_family == afSystem else { continue }
            if let name = interfaceName(of: fd), name.hasPrefix("utun") {
                return (fd, name)
            }
        }
        return nil
    }

    /// The interface name of a utun control socket.
    public static func interfaceName(of fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: ifNameSize)
        var size = socklen_t(buffer.count)
        guard getsockopt(fd, sysprotoControl, utunOptIfname, &buffer, &size) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }
}
