// Whitespace as Python's `str.isspace` / `str.strip()` see it: what the reference code strips from a question.

extension Unicode.Scalar {
    /// Python's `str.isspace`: Unicode White_Space plus the separators U+001C–U+001F.
    public var isPythonWhitespace: Bool { properties.isWhitespace || (0x1C...0x1F).contains(value) }
}

extension String {
    /// The string without leading and trailing whitespace (Python's `str.strip()`).
    public func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.isPythonWhitespace }),
              let last = scalars.lastIndex(where: { !$0.isPythonWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}
