// Checked reads of config values: every size a model is built from is positive and bounded, every epsilon
// finite and positive, every enum-like string one of its allowed values, before anything is allocated from
// them. A bad value is a `DecodingError` at its key, which `ConfigFile` turns into an error naming the file
// and the key path.

/// The largest size any config value may state (2^31): far above every real model, far below an overflow
/// when sizes are multiplied together.
public let largestConfigSize = 1 << 31

extension KeyedDecodingContainer {
    /// An integer in `range`; `defaultValue` when the key is absent (or null).
    public func decodeInteger(
        _ key: Key, in range: ClosedRange<Int>, default defaultValue: Int? = nil
    ) throws -> Int {
        let value: Int
        if let present = try decodeNumber(key) {
            value = present
        } else if let defaultValue {
            value = defaultValue
        } else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
        }
        guard range.contains(value) else {
            let bound = range.upperBound == largestConfigSize ? "at least \(range.lowerBound)" : "in \(range.lowerBound)...\(range.upperBound)"
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "must be \(bound), got \(value)")
        }
        return value
    }

    /// A size: an integer of at least `minimum` (1 by default) and at most `largestConfigSize`.
    public func decodeSize(_ key: Key, minimum: Int = 1, default defaultValue: Int? = nil) throws -> Int {
        try decodeInteger(key, in: minimum...largestConfigSize, default: defaultValue)
    }

    /// An optional size (nil when absent or null).
    public func decodeSizeIfPresent(_ key: Key, minimum: Int = 1) throws -> Int? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try decodeSize(key, minimum: minimum)
    }

    /// A finite number greater than zero (an epsilon, a base frequency, a ratio).
    public func decodePositive<T: BinaryFloatingPoint & Decodable>(_ key: Key, default defaultValue: T) throws -> T {
        let value = try decodeIfPresent(T.self, forKey: key) ?? defaultValue
        guard value.isFinite, value > 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self, debugDescription: "must be a finite number greater than 0, got \(value)")
        }
        return value
    }

    /// A string that is one of `allowed`; `defaultValue` when absent.
    public func decodeChoice(_ key: Key, allowed: [String], default defaultValue: String? = nil) throws -> String {
        guard let value = try decodeIfPresent(String.self, forKey: key) ?? defaultValue else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
        }
        guard allowed.contains(value) else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self,
                debugDescription: "'\(value)' is not one of \(allowed.map { "'\($0)'" }.joined(separator: ", "))")
        }
        return value
    }

    /// An integer, also accepted when written as a whole number with a fraction part of zero ("4.0", as
    /// Python's json writes some); nil when absent or null. Anything else names what was found.
    private func decodeNumber(_ key: Key) throws -> Int? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        if let integer = try? decode(Int.self, forKey: key) { return integer }
        if let number = try? decode(Double.self, forKey: key) {
            guard number.isFinite, number == number.rounded(), abs(number) < 1e15 else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: self, debugDescription: "must be a whole number, got \(number)")
            }
            return Int(number)
        }
        let found = (try? decode(String.self, forKey: key)).map { "the string \"\($0)\"" }
            ?? (try? decode(Bool.self, forKey: key)).map { "\($0)" } ?? "an array or object"
        throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "must be a whole number, got \(found)")
    }
}
