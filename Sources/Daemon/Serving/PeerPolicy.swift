#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Who may connect to the socket, checked against the peer's credentials (`SO_PEERCRED`) as soon as
/// a connection is accepted, before any byte is read or sent (docs/OPERATIONS.md, "Security").
///
/// Root and the daemon's own user are always allowed (they can read everything the daemon serves
/// anyway); so is any peer whose uid is in `users` or one of whose groups (the effective gid and
/// the supplementary groups the kernel reports for the connecting process) is in `groups`.
public struct PeerPolicy: Sendable, Hashable {
    /// Further allowed user ids.
    public var users: [UInt32]
    /// Allowed group ids.
    public var groups: [UInt32]

    public init(users: [UInt32], groups: [UInt32]) {
        self.users = users
        self.groups = groups
    }

    /// The default: no further users; the daemon's own (effective) group.
    public static var daemonDefault: PeerPolicy { PeerPolicy(users: [], groups: [getegid()]) }

    /// Whether a peer with these credentials may connect.
    public func allows(uid: UInt32, gid: UInt32, supplementaryGroups: [UInt32] = []) -> Bool {
        uid == 0 || uid == geteuid() || users.contains(uid) || groups.contains(gid) || supplementaryGroups.contains(where: groups.contains)
    }

    /// User ids for a comma-separated list of user names or numeric uids (`alice, 1001`).
    /// - Throws: a message naming the first unknown user.
    public static func userIDs(_ list: String) throws(PeerPolicyError) -> [UInt32] {
        try names(list).map { (name: String) throws(PeerPolicyError) -> UInt32 in
            if let id = UInt32(name) { return id }
            guard let entry = getpwnam(name) else { throw PeerPolicyError("unknown user \"\(name)\" (not in the user database; give a name or a numeric uid)") }
            return entry.pointee.pw_uid
        }
    }

    /// Group ids for a comma-separated list of group names or numeric gids (`trainers, 2000`).
    /// - Throws: a message naming the first unknown group.
    public static func groupIDs(_ list: String) throws(PeerPolicyError) -> [UInt32] {
        try names(list).map { (name: String) throws(PeerPolicyError) -> UInt32 in
            if let id = UInt32(name) { return id }
            guard let entry = getgrnam(name) else { throw PeerPolicyError("unknown group \"\(name)\" (not in the group database; give a name or a numeric gid)") }
            return entry.pointee.gr_gid
        }
    }

    private static func names(_ list: String) -> [String] {
        list.split(separator: ",").map { String($0.filter { $0 != " " }) }.filter { !$0.isEmpty }
    }
}

/// An `allow_users`/`allow_groups` entry that names no user or group.
public struct PeerPolicyError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The credentials of a connected Unix-socket peer (`SO_PEERCRED`).
struct PeerCredentials {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32
    /// The peer's supplementary groups (`SO_PEERGROUPS`, Linux 4.13+; empty where unsupported).
    var groups: [UInt32] = []

    /// The peer of `fd`, or nil when the kernel does not report it.
    init?(fd: Int32) {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (Linux; not exported to Swift without _GNU_SOURCE).
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0, length == 12 else { return nil }
        (pid, uid, gid) = credentials
        let peerGroups: Int32 = 59   // SO_PEERGROUPS
        var list = [UInt32](repeating: 0, count: 64)
        var bytes = socklen_t(list.count * 4)
        var got = list.withUnsafeMutableBytes { getsockopt(fd, SOL_SOCKET, peerGroups, $0.baseAddress, &bytes) }
        if got != 0 && errno == ERANGE {   // `bytes` now says how many it needs
            list = [UInt32](repeating: 0, count: Int(bytes) / 4)
            got = list.withUnsafeMutableBytes { getsockopt(fd, SOL_SOCKET, peerGroups, $0.baseAddress, &bytes) }
        }
        if got == 0 { groups = Array(list.prefix(Int(bytes) / 4)) }
    }
}
