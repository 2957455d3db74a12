/// The release version tokenfeed's binaries and its Python client share (docs/RELEASING.md).
///
/// `string` must equal the repository's `VERSION` file and the Python package's `__version__`;
/// scripts/release.sh and the Python tests check that they agree.
public enum ReleaseVersion {
    /// The release, `MAJOR.MINOR.PATCH` (tagged `vMAJOR.MINOR.PATCH`).
    public static let string = "0.1.0"

    /// What `--version` prints for `program`: its release and the protocol and cursor versions it speaks,
    /// e.g. `tokenfeedd 0.1.0 (protocol 1, cursor 1)`.
    public static func line(for program: String) -> String {
        "\(program) \(string) (protocol \(FrameHeader.currentVersion), cursor \(Cursor.currentVersion))"
    }
}
