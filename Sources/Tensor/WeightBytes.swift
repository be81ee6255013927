// Raw bytes of a weight matrix: owned (allocated here) or borrowed (a memory-mapped checkpoint).

/// Bytes that are never written once built, so they may be shared between threads.
public final class WeightBytes: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let count: Int
    /// Keeps borrowed bytes alive (a mapped file); nil when this object owns `base`.
    private let owner: AnyObject?

    /// Allocates `count` bytes, 64-byte aligned, and lets `fill` write them before they are shared.
    public init(count: Int, fill: (UnsafeMutableRawPointer) -> Void) {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        fill(raw)
        self.base = UnsafeRawPointer(raw)
        self.count = count
        self.owner = nil
    }

    /// Borrows `count` bytes at `base`, kept alive by `owner`.
    public init(borrowing base: UnsafeRawPointer, count: Int, owner: AnyObject) {
        self.base = base
        self.count = count
        self.owner = owner
    }

    public var isBorrowed: Bool { owner != nil }

    deinit {
        if owner == nil { UnsafeMutableRawPointer(mutating: base).deallocate() }
    }
}
