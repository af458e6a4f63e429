#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Whether a TCP port can be listened on, checked by binding it for a moment: so that a port
/// in use is reported before anything starts, not when the HTTP server gives up later.
public enum LocalPort {
    /// True when `port` on `host` (an IPv4 address; anything else is not checked) is free.
    public static func isFree(_ port: Int, host: String = "127.0.0.1") -> Bool {
        let address = inet_addr(host)
        guard address != INADDR_NONE, let port = UInt16(exactly: port) else { return true }
        #if canImport(Glibc)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { return true }
        defer { close(descriptor) }
        var reuse: Int32 = 1
        // As the HTTP server binds: a port left in TIME_WAIT by a restarted worker is free.
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr.s_addr = address
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound == 0
    }
}
