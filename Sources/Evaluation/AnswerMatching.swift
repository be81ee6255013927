// When an answer counts as correct: its first word, lower-cased with punctuation stripped, is the
// expected one-word answer.

public enum AnswerMatching {
    /// The first whitespace-separated word of `text`, lower-cased, letters and digits only.
    public static func firstWord(_ text: String) -> String {
        for word in text.split(whereSeparator: { $0.isWhitespace }) {
            let cleaned = String(word.lowercased().filter { $0.isLetter || $0.isNumber })
            if !cleaned.isEmpty { return cleaned }
        }
        return ""
    }

    public static func isCorrect(answer: String, expected: String) -> Bool {
        let want = firstWord(expected)
        return !want.isEmpty && firstWord(answer) == want
    }
}
