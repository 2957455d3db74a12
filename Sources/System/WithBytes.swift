/// Runs `body` over an array's bytes, keeping `body`'s typed error (`Array.withUnsafeBytes` is only
/// `rethrows`, which would widen it to `any Error`).
@inlinable
public func withBytes<R, E: Error>(of array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let result: Result<R, E> = array.withUnsafeBytes { bytes in Result { () throws(E) in try body(bytes) } }
    return try result.get()
}
