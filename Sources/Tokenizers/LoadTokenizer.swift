// Choosing a tokenizer from the files in a checkpoint directory.

import Foundation

/// Loads the tokenizer in `directory`: tokenizer.json when present, else vocab.json + merges.txt (GPT-2 or
/// CLIP, told apart by tokenizer_config.json's `tokenizer_class` or by `</w>` tokens); tokenizer_config.json
/// supplies the special tokens and flags. CLIP tokenizers come back as `CLIPTokenizer`.
public func loadTokenizer(directory: String) throws(TokenizerError) -> any Tokenizer {
    let manager = FileManager.default
    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
    var isDirectory: ObjCBool = false
    guard manager.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw .missingFiles(directory: directory, reason: "it is not a directory")
    }
    let configPath = path("tokenizer_config.json")
    let configuration =
        manager.fileExists(atPath: configPath)
        ? try TokenizerConfiguration(path: configPath) : TokenizerConfiguration()

    let tokenizer: PreTrainedTokenizer
    if manager.fileExists(atPath: path("tokenizer.json")) {
        tokenizer = try PreTrainedTokenizer(tokenizerJSON: path("tokenizer.json"), configuration: configuration)
    } else if manager.fileExists(atPath: path("vocab.json")), manager.fileExists(atPath: path("merges.txt")) {
        tokenizer = try PreTrainedTokenizer(
            vocabJSON: path("vocab.json"), mergesTXT: path("merges.txt"), configuration: configuration)
    } else if manager.fileExists(atPath: path("tokenizer.model")) {
        throw .missingFiles(
            directory: directory,
            reason: "only a SentencePiece tokenizer.model is there; save the tokenizer with transformers "
                + "(AutoTokenizer.from_pretrained(...).save_pretrained(...)) to get tokenizer.json")
    } else {
        throw .missingFiles(directory: directory, reason: "expected tokenizer.json, or vocab.json and merges.txt")
    }
    if configuration.isCLIP || (configuration.tokenizerClass == nil && tokenizer.decodeFixUp != nil) {
        return CLIPTokenizer(tokenizer)
    }
    return tokenizer
}
