/// Calls `body` with the bytes of `array`, keeping `body`'s typed `ProtocolError`
/// (`Array.withUnsafeBytes` is `rethrows`, which would widen it to `any Error`).
func withBytes<R>(of array: [UInt8],
                  _ body: (UnsafeRawBufferPointer) throws(ProtocolError) -> R) throws(ProtocolError) -> R {
    let result: Result<R, ProtocolError> = array.withUnsafeBytes { buffer in
        do throws(ProtocolError) { return .success(try body(buffer)) } catch { return .failure(error) }
    }
    return try result.get()
}
