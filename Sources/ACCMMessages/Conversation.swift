// What came before the question in a chat: the system text and the earlier exchanges, and which user
// message carries the image. The decoder lays them out in LLaVA's `vicuna_v1` template
// (`system USER: u₁ ASSISTANT: a₁</s>USER: q ASSISTANT:`); the image goes at the start of its user message.

/// One earlier exchange: what the user said and what the assistant answered.
public struct Exchange: Sendable, Equatable, Codable {
    public var user: String
    public var assistant: String

    public init(user: String, assistant: String) {
        self.user = user
        self.assistant = assistant
    }
}

/// The chat around a request's question.
public struct Conversation: Sendable, Equatable, Codable {
    /// Replaces the template's system text; nil keeps it.
    public var system: String?
    /// Earlier exchanges, oldest first.
    public var history: [Exchange]
    /// The exchange of `history` whose user message carries the image; nil: the question's own message.
    public var imageTurn: Int?

    public init(system: String? = nil, history: [Exchange] = [], imageTurn: Int? = nil) {
        self.system = system
        self.history = history
        self.imageTurn = imageTurn
    }

    /// A single question with the template's system text.
    public static let single = Conversation()

    /// UTF-8 bytes of every text it holds.
    public var textBytes: Int {
        (system?.utf8.count ?? 0) + history.reduce(0) { $0 + $1.user.utf8.count + $1.assistant.utf8.count }
    }
}
