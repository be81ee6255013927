// `accm bench tokenizer`: encode and decode throughput of the project's tokenizers on English text, one
// core, with Hugging Face `tokenizers` timed on the same text for comparison (Scripts/bench_tokenizer_hf.py).

import ArgumentParser
import Foundation
import Tokenizers

struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Time tokenizer encode/decode on English text (one thread) against Hugging Face tokenizers.",
        discussion: """
            By default the fixture tokenizers (Tests/Fixtures/tokenizers: GPT-2-style, CLIP-style, CLIP's real \
            vocabulary, LLaMA-style) encode a generated English text: Zipf-distributed common words with their \
            inflections, rare invented names, numbers and punctuation, in paragraphs. Encoding runs paragraph by \
            paragraph (as requests arrive) and as one string. Rates are MB of UTF-8 input per second.
            """
    )

    @Option(help: "Directories of tokenizers to time (default: the fixture tokenizers).")
    var tokenizer: [String] = []

    @Option(help: "English text to encode (default: generated).")
    var text: String?

    @Option(help: "Size of the generated text in MB.")
    var megabytes: Double = 5

    @Option(help: "Timed runs per case (the median is reported, after one warm-up).")
    var `repeat` = 3

    @Option(help: "A Python with `tokenizers` installed: also time Hugging Face tokenizers on the same text.")
    var python: String?

    func validate() throws {
        if `repeat` < 1 { throw ValidationError("--repeat must be at least 1") }
        if megabytes <= 0 { throw ValidationError("--megabytes must be positive") }
    }

    func run() throws {
        print(MachineDescription.current.lines.joined(separator: "\n"))
        print("tokenizer threads: 1 (encode runs on the calling thread)")
        print("runs per case: \(`repeat`) after 1 warm-up, median reported")
        let corpus: String
        if let text {
            corpus = try String(contentsOfFile: text, encoding: .utf8)
        } else {
            corpus = EnglishText.generate(bytes: Int(megabytes * 1_000_000), seed: 42)
        }
        let paragraphs = corpus.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        let bytes = Double(corpus.utf8.count)
        let words = corpus.split(whereSeparator: \.isWhitespace)
        print(
            String(
                format: "text: %.2f MB, %d paragraphs, %d words, %d distinct", bytes / 1e6, paragraphs.count,
                words.count, Set(words).count) + (text.map { " (\($0))" } ?? " (generated, seed 42)"))
        print("")

        let directories = tokenizer.isEmpty ? Self.fixtureTokenizers() : tokenizer.map { ($0, $0) }
        var textFile: String?
        for (name, directory) in directories {
            let loaded = try loadTokenizer(directory: directory)
            let clock = ContinuousClock()
            func seconds(_ d: Duration) -> Double {
                Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            }
            func median(_ body: () -> Void) -> Double {
                body()
                var samples: [Double] = []
                for _ in 0..<`repeat` { samples.append(seconds(clock.measure(body))) }
                return samples.sorted()[samples.count / 2]
            }
            var tokenCount = 0
            var allIDs: [[Int]] = []
            let perParagraph = median {
                tokenCount = 0
                allIDs = paragraphs.map { loaded.encode($0, addSpecialTokens: false) }
                tokenCount = allIDs.reduce(0) { $0 + $1.count }
            }
            let whole = median { _ = loaded.encode(corpus, addSpecialTokens: false) }
            let decode = median { for ids in allIDs { _ = loaded.decode(ids, skipSpecialTokens: false) } }
            let stream = median {
                for ids in allIDs.prefix(max(1, allIDs.count / 10)) {
                    var detokenizer = loaded.streamingDetokenizer()
                    for id in ids { _ = detokenizer.append(id) }
                    _ = detokenizer.finish()
                }
            }
            let streamTokens = allIDs.prefix(max(1, allIDs.count / 10)).reduce(0) { $0 + $1.count }
            let label = name.padding(toLength: 18, withPad: " ", startingAt: 0)
            print(
                label
                    + String(
                        format: "encode %6.2f MB/s per paragraph, %6.2f MB/s one string"
                            + "  (%.2f M tokens/s, %.2f bytes/token)",
                        bytes / perParagraph / 1e6, bytes / whole / 1e6, Double(tokenCount) / perParagraph / 1e6,
                        bytes / Double(tokenCount)))
            print(
                String(repeating: " ", count: 18)
                    + String(
                        format: "decode %6.2f MB/s, streaming %.2f M tokens/s", bytes / decode / 1e6,
                        Double(streamTokens) / stream / 1e6))
            if let python {
                if textFile == nil {
                    let path = NSTemporaryDirectory() + "accm-bench-tokenizer-\(getpid()).txt"
                    try corpus.write(toFile: path, atomically: true, encoding: .utf8)
                    textFile = path
                }
                print(try Self.huggingFace(python: python, directory: directory, text: textFile!, repeats: `repeat`))
            }
        }
        if let textFile { try? FileManager.default.removeItem(atPath: textFile) }
    }

    /// The fixture tokenizers, found from the current directory or from this source file's checkout.
    static func fixtureTokenizers() -> [(String, String)] {
        let relative = "Tests/Fixtures/tokenizers"
        let fromSource = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(relative).path
        let root = FileManager.default.fileExists(atPath: relative) ? relative : fromSource
        return [
            ("gpt2", "gpt2"), ("clip", "clip"), ("clip (real vocab)", "clip-openai"), ("llama", "llama"),
            ("llama (legacy)", "llama-legacy"),
        ].map { ($0.0, root + "/" + $0.1) }
    }

    /// Runs Scripts/bench_tokenizer_hf.py on the same text.
    static func huggingFace(python: String, directory: String, text: String, repeats: Int) throws -> String {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Scripts/bench_tokenizer_hf.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script, directory, text, "--repeat", String(repeats)]
        var environment = ProcessInfo.processInfo.environment
        environment["RAYON_NUM_THREADS"] = "1"
        environment["TOKENIZERS_PARALLELISM"] = "false"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return output.trimmingCharacters(in: .newlines)
    }
}

/// Deterministic English-like text: Zipf-distributed common words and their inflections, rare invented
/// names (which miss the word cache and exercise the merges), numbers, punctuation, quotes, paragraphs.
enum EnglishText {
    static let words = """
        the of and to a in is it you that he was for on are with as I his they be at one have this from or had \
        by word but what some we can out other were all there when up use your how said an each she which do \
        their time if will way about many then them write would like so these her long make thing see him two \
        has look more day could go come did number sound no most people my over know water than call first who \
        may down side been now find any new work part take get place made live where after back little only \
        round man year came show every good me give our under name very through just form sentence great think \
        say help low line differ turn cause much mean before move right boy old too same tell does set three \
        want air well also play small end put home read hand port large spell add even land here must big high \
        such follow act why ask men change went light kind off need house picture try us again animal point \
        mother world near build self earth father head stand own page should country found answer school grow \
        study still learn plant cover food sun four between state keep eye never last let thought city tree \
        cross farm hard start might story saw far sea draw left late run while press close night real life few \
        north open seem together next white children begin got walk example ease paper group always music those \
        both mark often letter until mile river car feet care second book carry took science eat room friend \
        began idea fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl \
        usual young ready above ever red list though feel talk bird soon body dog family direct pose leave song \
        measure door product black short numeral class wind question happen complete ship area half rock order \
        fire south problem piece told knew pass since top whole king space heard best hour better true during \
        hundred five remember step early hold west ground interest reach fast verb sing listen six table travel \
        less morning ten simple several vowel toward war lay against pattern slow center love person money serve \
        appear road map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry \
        dark machine note wait plan figure star box noun field rest correct able pound done beauty drive stood \
        contain front teach week final gave green oh quick develop ocean warm free minute strong special mind \
        behind clear tail produce fact street inch multiply nothing course stay wheel full force blue object \
        decide surface deep moon island foot system busy test record boat common gold possible plane stead dry \
        wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire bring yes distant \
        fill east paint language among circle square triangle image model token vision caption answer pixel
        """.split(separator: " ").map(String.init)

    static func generate(bytes target: Int, seed: UInt64) -> String {
        var rng = SplitMix64(seed: seed)
        // Zipf weights over the list order.
        let weights = words.indices.map { 1.0 / (Double($0) + 2.7) }
        var cumulative: [Double] = []
        var total = 0.0
        for w in weights {
            total += w
            cumulative.append(total)
        }
        func word() -> String {
            let r = rng.nextDouble() * total
            var lo = 0
            var hi = cumulative.count - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cumulative[mid] < r { lo = mid + 1 } else { hi = mid }
            }
            var w = words[lo]
            switch rng.next() % 20 {
            case 0: w += "s"
            case 1: w += "ed"
            case 2: w += "ing"
            case 3: w += "ly"
            case 4 where w.count > 3: w += "'s"
            default: break
            }
            return w
        }
        let syllables = [
            "ka", "lo", "ven", "dri", "mar", "tis", "qu", "el", "bor", "sha", "ny", "os", "tra", "pe", "zul",
        ]
        var out = ""
        out.reserveCapacity(target + 1000)
        while out.utf8.count < target {
            let sentences = 2 + Int(rng.next() % 6)
            for s in 0..<sentences {
                let length = 5 + Int(rng.next() % 20)
                var sentence: [String] = []
                for i in 0..<length {
                    var w: String
                    switch rng.next() % 100 {
                    case 0..<3:
                        w = (0..<(2 + Int(rng.next() % 3))).map { _ in
                            syllables[Int(rng.next() % UInt64(syllables.count))]
                        }.joined()
                        w = w.prefix(1).uppercased() + w.dropFirst()
                    case 3..<5:
                        w = String(rng.next() % 10_000)
                    case 5:
                        w = "\"" + word() + "\""
                    default:
                        w = word()
                    }
                    if i == 0 { w = w.prefix(1).uppercased() + w.dropFirst() }
                    if i < length - 1, rng.next() % 12 == 0 { w += "," }
                    sentence.append(w)
                }
                out += sentence.joined(separator: " ") + (rng.next() % 8 == 0 ? "?" : ".")
                if s < sentences - 1 { out += " " }
            }
            out += "\n\n"
        }
        return out
    }
}

/// A small deterministic generator (SplitMix64).
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
