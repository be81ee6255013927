// An answer's streamed text as the coordinator relays it: what the client has been sent, and what the
// current attempt has produced. When a decoder is lost mid-answer, another replica answers again from the
// start (greedy and seeded sampling repeat themselves); the text the client already has is checked against
// the new attempt's and skipped, so no character reaches the client twice — and a replica that writes
// something else is caught instead of splicing two answers together.

/// The client-facing stream of one request.
struct RelayedStream {
    /// Scalars the client has been sent.
    private(set) var sent: [Unicode.Scalar] = []
    /// Scalars the current attempt has produced.
    private(set) var attemptLength = 0
    /// The next partial sequence number expected from the current attempt.
    private(set) var attemptSequence: UInt64 = 0
    /// The next partial sequence number the client gets.
    private(set) var clientSequence: UInt64 = 0

    enum Relay: Equatable {
        /// Forward this delta (with this client-facing sequence number).
        case forward(String, sequence: UInt64)
        /// Nothing new for the client (a repeat, or text it already has).
        case nothing
        /// The attempt's text departs from what the client was sent.
        case diverged
    }

    /// A new attempt starts from the first character.
    mutating func restart() {
        attemptLength = 0
        attemptSequence = 0
    }

    /// The attempt's partial `sequence` carrying `delta`.
    mutating func receive(_ delta: String, sequence: UInt64) -> Relay {
        guard sequence == attemptSequence else { return .nothing }  // a repeat or out of order: dropped
        attemptSequence += 1
        var fresh = String.UnicodeScalarView()
        for scalar in delta.unicodeScalars {
            if attemptLength < sent.count {
                guard sent[attemptLength] == scalar else { return .diverged }
            } else {
                fresh.append(scalar)
                sent.append(scalar)
            }
            attemptLength += 1
        }
        guard !fresh.isEmpty else { return .nothing }
        defer { clientSequence += 1 }
        return .forward(String(fresh), sequence: clientSequence)
    }

    /// Whether a final answer text agrees with what the client was sent.
    func agrees(withFinal text: String) -> Bool {
        text.unicodeScalars.starts(with: sent)
    }
}
