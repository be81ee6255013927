"""Generate the tokenizer parity fixtures under Tests/Fixtures/tokenizers/.

The script writes its own training text (synthetic scene sentences like the project's
world, plus a few paragraphs in other languages), trains small real tokenizers with the
`tokenizers` and `sentencepiece` packages, saves them the way `transformers` does, and
records what the reference implementations produce for a fixed corpus of test strings:
token ids with and without special tokens, decoded text, per-token decodes and CLIP
context-length encodings. CLIP's real vocabulary comes from the `openai-clip` wheel
(`clip/bpe_simple_vocab_16e6.txt.gz`); OpenAI's own `SimpleTokenizer` from the same
wheel is the second CLIP reference.

Usage:  python Scripts/make_tokenizer_fixtures.py
The output is byte-for-byte deterministic. See Tests/Fixtures/tokenizers/README.md.
"""

import gzip
import hashlib
import importlib.util
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # tokenizers' trainer: one thread, one order
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ftfy  # noqa: E402
import sentencepiece as spm  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import AddedToken, AutoTokenizer, CLIPTokenizer, GPT2TokenizerFast, LlamaTokenizer  # noqa: E402
from transformers import logging as hf_logging  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "tokenizers"
SEED = 7
VOCAB_SIZE = 2000
CONTEXT_LENGTHS = (77, 248)  # CLIP, LongCLIP

# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------

COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "gray", "pink", "brown", "cyan"]
SHAPES = ["square", "circle", "triangle", "star", "hexagon", "cross", "diamond", "ring"]
SIZES = ["small", "large", "tiny", "big"]
RELATIONS = ["left of", "right of", "above", "below", "next to"]
PLACES = ["top left", "top right", "bottom left", "bottom right", "center", "top", "bottom", "left", "right"]
NUMBERS = ["no", "one", "two", "three", "four", "five"]

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

# Short paragraphs in other scripts, about the same world (written for this script).
MULTILINGUAL = [
    "Le carré rouge est à gauche du cercle bleu. Où se trouve l'étoile jaune ? Elle est en haut à droite.",
    "Das grüne Dreieck liegt über dem großen Quadrat. Wie viele Kreise gibt es? Es gibt drei Kreise.",
    "El círculo azul está debajo del rombo naranja. ¿Qué forma es pequeña? La estrella es pequeña.",
    "O hexágono roxo está no centro da imagem. Não há nenhum anel branco à direita.",
    "Hình vuông màu đỏ nằm bên trái hình tròn màu xanh. Có bao nhiêu ngôi sao? Có hai ngôi sao.",
    "Красный квадрат находится слева от синего круга. Сколько здесь треугольников? Их четыре.",
    "Το κόκκινο τετράγωνο είναι αριστερά από τον μπλε κύκλο. Πόσα αστέρια υπάρχουν; Υπάρχουν δύο.",
    "红色的正方形在蓝色圆形的左边。图片里有几个星星？有两个星星。",
    "赤い四角形は青い円の左にあります。星はいくつありますか？星は二つです。",
    "빨간 사각형은 파란 원의 왼쪽에 있습니다. 별은 몇 개입니까? 별은 두 개입니다.",
    "สี่เหลี่ยมสีแดงอยู่ทางซ้ายของวงกลมสีน้ำเงิน มีดาวกี่ดวง มีดาวสองดวง",
    "लाल वर्ग नीले वृत्त के बाईं ओर है। कितने तारे हैं? दो तारे हैं।",
    "المربع الأحمر على يسار الدائرة الزرقاء. كم عدد النجوم؟ يوجد نجمتان.",
    "הריבוע האדום נמצא משמאל לעיגול הכחול. כמה כוכבים יש? יש שני כוכבים.",
    "Kırmızı kare mavi dairenin solunda. Kaç yıldız var? İki yıldız var.",
    "Czerwony kwadrat jest na lewo od niebieskiego koła. Ile jest gwiazd? Są dwie gwiazdy.",
    "Emoji in the scene: 🟥 left of 🔵, ⭐ above 🔺. 🤗 👍🏽 🇫🇷 👩‍👩‍👧‍👦",
]


def scene_sentence(rng: random.Random) -> str:
    c1, c2 = rng.choice(COLORS), rng.choice(COLORS)
    s1, s2 = rng.choice(SHAPES), rng.choice(SHAPES)
    kind = rng.randrange(9)
    if kind == 0:
        return f"The {c1} {s1} is {rng.choice(RELATIONS)} the {c2} {s2}."
    if kind == 1:
        return f"What color is the {rng.choice(SIZES)} {s1}?"
    if kind == 2:
        return f"How many {s1}s are there? There are {rng.choice(NUMBERS)} {s1}s."
    if kind == 3:
        return f"A {rng.choice(SIZES)} {c1} {s1} sits at the {rng.choice(PLACES)} of the image."
    if kind == 4:
        return f"Is there a {c1} {s1} {rng.choice(RELATIONS)} the {s2}? {rng.choice(['Yes', 'No'])}, it's {c2}."
    if kind == 5:
        return f"USER: <image>\nWhat is {rng.choice(RELATIONS)} the {c1} {s1}? ASSISTANT: The {c2} {s2}.</s>"
    if kind == 6:
        return f"Supplemental information for questions: the {c1} {s1} is in the {rng.choice(PLACES)}."
    if kind == 7:
        n = rng.randrange(1, 64)
        return f"Object {n} at ({rng.randrange(64)}, {rng.randrange(64)}): {c1} {s1}, size {rng.randrange(1, 9)}px."
    return f"I'm sure the {s1} isn't {c1}; we'll see what you've got, they'd say it's {c2}."


def training_corpus() -> list[str]:
    rng = random.Random(SEED)
    lines = [scene_sentence(rng) for _ in range(6000)]
    lines += [SYSTEM] * 20
    for paragraph in MULTILINGUAL:
        lines += [paragraph] * 12
    lines += ["Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2025 3.14 1,000", "Tabs\tand\nnew lines\r\nand  double  spaces"] * 10
    return lines


def test_corpus() -> list[str]:
    """At least 300 strings covering the cases where tokenizers differ."""
    rng = random.Random(SEED + 1)
    strings: list[str] = []
    # Plain English in the project's world, with case and punctuation variations.
    for i in range(100):
        s = scene_sentence(rng)
        if i % 7 == 3:
            s = s.upper()
        elif i % 7 == 5:
            s = s.title()
        strings.append(s)
    strings.append(SYSTEM + " USER: <image>\nDescribe the scene. ASSISTANT:")
    strings.append("additional information: the red square is left of the circle.")
    strings.append("Question: what is above the star?  Supplemental information for questions: a blue ring.")
    # Whole paragraphs and each sentence on its own.
    for paragraph in MULTILINGUAL:
        strings.append(paragraph)
        strings.append(paragraph.split(" ")[0] + " " + paragraph.split(" ")[-1])
    strings += [
        # The empty string and whitespace.
        "", " ", "  ", "\t", "\n", "\r\n", " \n ", "\n\n\n", "a", " a", "a ", " a ", "   a", "a   ", "a   b",
        "a \tb", "a\t\tb", "a\n\nb", "a\r\nb", "a\rb", "line one\r\nline two\r\n", "  leading and trailing  ",
        "tab\tseparated\tvalues", "trailing newline\n", "\n leading newline", "a\u00a0b", "a\u3000b", "a\u2028b",
        "a\u2029b", "a\u0085b", "a\u1680b", "a\u2009b\u200ac", "a\u202fb\u205fc", "a\x0bb\x0cc", "a\x1cb\x1fc",
        "x" + " " * 10 + "y", " " * 17, "\t \t \n", "word\n", "end.  ", "  \u00a0 start",
        # Contractions, including upper case (which the GPT-2 pattern does not treat as contractions).
        "I'm", "you're", "we've", "they'll", "he'd", "it's", "don't", "IT'S", "'S 'LL", "YOU'RE", "We'Ve",
        "'s", "'t", "''s", "'''", "rock'n'roll", "o'clock", "the 90's", "' s", "it ' s", "Jones'", "'",
        "can't won't shouldn't", "I'M SURE THEY'D SAY IT'S RED.",
        # Accents and combining marks (precomposed and decomposed), case mapping corners.
        "café naïve résumé", "cafe\u0301 nai\u0308ve", "e\u0301", "a\u0300\u0301\u0302", "\u0301abc",
        "Ångström", "A\u030angstro\u0308m", "Tiếng Việt có dấu", "Tie\u0302\u0301ng Vie\u0323\u0302t", "ĲSSEL ﬁne ﬂat",
        "Straße STRASSE", "İstanbul ıi", "ΣΑΣ σας ΌΣΟΣ", "ǅemal ǈ ǋ", "ÀÉÎÕÜ àéîõü", "Ωmega Ω Ω", "ﬀ ﬃ",
        "\u1100\u1161\u11a8", "한국어 \u1112\u1161\u11ab", "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３", "ｶﾀｶﾅ", "x\u0338", "\u212b",
        # CJK, Thai, Devanagari, RTL, other scripts.
        "日本語のテキスト", "中文文本，标点符号。", "漢字かなカナ", "東京タワー", "ภาษาไทย", "สวัสดีครับ",
        "हिन्दी भाषा", "नमस्ते दुनिया", "क्षत्रिय", "العربية", "עברית", "ελληνικά", "русский язык", "Ελλάδα",
        "ᚠᚢᚦᚨᚱᚲ", "ꯃꯤꯇꯩ", "𝕳𝖊𝖑𝖑𝖔", "𝐀𝐁𝐂", "ℌℑℜ", "ａｂｃ",
        # Emoji: plain, ZWJ sequences, skin tones, flags, keycaps, tag sequences.
        "🤗", "x 🤗", "🤗🤗🤗", "👍🏽", "👩‍👩‍👧‍👦", "👨‍💻 coding", "🏳️‍🌈", "🇫🇷🇯🇵🇺🇸", "🇫", "1️⃣ #️⃣",
        "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", "❤️", "☺", "♀️", "a🤗b", "🤗 🤗", "🫠🪿",
        "🟥 left of 🔵", "emoji at the end 😀", "😀 emoji at the start",
        # Numbers.
        "0", "12345", "3.14159", "1,000,000", "-42", "+7", "1e-5", "0x1F", "2025-01-01", "12:30", "50%", "$9.99",
        "²³¹", "½ ¼", "٣٤٥", "१२३", "１２３", "Ⅻ ⅻ", "①②③", "𝟙𝟚𝟛", "123abc456", "abc123", "a1b2c3",
        "3.0 vs 3,0", "10^6", "π ≈ 3.14",
        # Punctuation runs.
        "!!!", "???", "...", "?!?!", "!!! ??? ...", "---", "—", "– - —", "«quoted»", "“curly” ‘quotes’",
        "\"straight\" 'quotes'", "(parens) [brackets] {braces}", "a,b;c:d", "@#$%^&*", "~`|\\/", "<>", "<<>>",
        "#hashtag @mention", "http://example.com/path?q=1&r=2", "user@example.com", "C:\\Windows\\path",
        "a.b.c", "1.2.3.4", "…", "¿¡", "•·°", "©®™", "→ ← ↑ ↓", "∑∫√∞",
        # Special-token text inside ordinary text.
        "<|endoftext|>", "a<|endoftext|>b", "Hello<|endoftext|>", "<|endoftext|> world", " <|endoftext|> ",
        "<|endoftext|><|endoftext|>", "<|endoftext", "endoftext|>", "<|ENDOFTEXT|>", "<|startoftext|>hi",
        "<image>", "<image>\nWhat is it?", "USER: <image>\nWhat color is the square? ASSISTANT:", "<image><image>",
        "  <image>  ", "a<image>b", "<im age>", "<<image>>", "<Image>", "<s>", "</s>", "<s>hello</s>",
        "<s><s>", " <s> ", "<unk>", "a <unk> b", "<0x41>", "▁", "▁▁hello", "hello▁world", "<pad>",
        "<|im_start|>user\nhi<|im_end|>", "[INST] hi [/INST]", "<sep>", "x <sep> y", "<sep>z", "a<sep>b",
        "Ġ", "Ċ", "âĢ", "</w>", "a</w>", "Ġhello",
        # HTML entities and text that ftfy would change (OpenAI CLIP cleaning).
        "&amp; &lt;3 &gt; &quot;hi&quot; &#39;s", "&amp;amp;", "fish &amp chips", "&#x27;hex&#x27;", "&nbsp;x",
        "&copy; 2025", "caf&eacute;", "a\x00b", "a\x7fb", "a\u200bb", "\ufeffBOM", "\x1b[31mred\x1b[0m",
        "a\u200db", "a\u00adb", "e\u0301\u0327", "\u2018single\u2019 \u201cdouble\u201d",
        "the cafÃ© is sÃ³ good",  # mojibake: only ftfy repairs it
        # Letters new in Unicode 16 (U+1C89) and 17 (U+088F, U+A7CE): the pattern engines' tables differ.
        "\u1c89\u1c8a x\u088fy \ua7ce", "it'\u017f", "IT'\u017f K\u212a",
    ]
    # Very long words and repetitions.
    strings += [
        "a" * 1200,
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(1500)),
        "ab" * 600,
        "1234567890" * 110,
        "!" * 1000,
        "🤗" * 300,
        "é" * 500,
        "日本" * 400,
        " " * 1000 + "x",
        "word " * 250,
        "supercalifragilisticexpialidocious" * 30,
    ]
    # Seeded random mixtures of the characters above.
    pool = list("abcXYZ019 '\t\n\r.!?,-_") + [
        "é", "e\u0301", "\u0308", "日", "本", "ภ", "ा", "क", "🤗", "\u200d", "\ufe0f", "🏽", "🇫", "ß", "İ", "Σ",
        "\u00a0", "\u3000", "'s", "'LL", "<|endoftext|>", "<image>", "<s>", "  ", "１", "²", "ﬁ", "“", "&amp;",
    ]
    for _ in range(60):
        strings.append("".join(rng.choice(pool) for _ in range(rng.randrange(1, 40))))
    assert len(strings) >= 300, len(strings)
    return strings


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def train_byte_level_bpe(corpus: list[str]) -> Tokenizer:
    """A GPT-2-style byte-level BPE, built the way GPT-2's tokenizer.json is laid out."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    return tok


CLIP_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def train_clip_bpe(corpus: list[str]) -> Tokenizer:
    """A CLIP-style BPE (`</w>` end-of-word suffix) with CLIPTokenizer's normalizer and pre-tokenizer.

    `tokenizers`' trainer breaks ties between equally frequent pairs by symbol ids that it assigns from a
    hash map when `end_of_word_suffix` is set, so its output changes from run to run. This is the plain BPE
    algorithm instead, ties broken by the pair's text. The vocabulary is laid out as CLIP's: the 256 byte
    symbols, the byte symbols with `</w>` (only those seen at a word end, so that unknown symbols occur),
    one token per merge, then the two special tokens."""
    pipeline = Tokenizer(models.BPE())
    pipeline.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    pipeline.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    counts: dict[tuple[str, ...], int] = {}
    for line in corpus:
        normalized = pipeline.normalizer.normalize_str(line)
        for word, _ in pipeline.pre_tokenizer.pre_tokenize_str(normalized):
            symbols = tuple(word[:-1]) + (word[-1] + "</w>",)
            counts[symbols] = counts.get(symbols, 0) + 1
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=lambda c: ord(c))
    word_ends = sorted({w[-1] for w in counts}, key=lambda t: ord(t[0]))
    vocab = alphabet + word_ends
    merges: list[tuple[str, str]] = []
    words = dict(counts)
    target = VOCAB_SIZE - 2
    while len(vocab) < target:
        pairs: dict[tuple[str, str], int] = {}
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] = pairs.get(pair, 0) + n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        vocab.append(best[0] + best[1])
        merged: dict[tuple[str, ...], int] = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(set(vocab)) == len(vocab)
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(vocab)}, merges=merges,
                               end_of_word_suffix="</w>", unk_token="<|endoftext|>"))
    tok.normalizer = pipeline.normalizer
    tok.pre_tokenizer = pipeline.pre_tokenizer
    return tok


def train_sentencepiece(corpus: list[str], directory: Path) -> Path:
    """A LLaMA-style SentencePiece BPE model (byte fallback, digits split, dummy prefix)."""
    prefix = directory / "tokenizer"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_prefix=str(prefix), model_type="bpe", vocab_size=VOCAB_SIZE,
        byte_fallback=True, character_coverage=0.9995, num_threads=1, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        add_dummy_prefix=True, remove_extra_whitespaces=False, normalization_rule_name="identity",
        split_digits=True, allow_whitespace_only_pieces=True, max_sentencepiece_length=16, minloglevel=2,
    )
    return prefix.with_suffix(".model")


def load_openai_simple_tokenizer():
    """OpenAI's `clip/simple_tokenizer.py` from the openai-clip wheel, without importing `clip/__init__`
    (which needs torchvision)."""
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("openai-clip is not installed: pip install -r Scripts/requirements.txt")
    package = Path(list(spec.submodule_search_locations)[0])
    module_spec = importlib.util.spec_from_file_location("openai_clip_simple_tokenizer", package / "simple_tokenizer.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module, package / "bpe_simple_vocab_16e6.txt.gz"


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def write_json(path: Path, value, *, one_item_per_line: str | None = None) -> None:
    """Deterministic JSON: ASCII escapes (control characters stay readable), sorted keys; the list under
    `one_item_per_line` gets one entry per line so diffs stay reviewable."""
    if one_item_per_line is None:
        text = json.dumps(value, ensure_ascii=True, sort_keys=True, indent=1)
    else:
        head = {k: v for k, v in value.items() if k != one_item_per_line}
        body = ",\n".join(json.dumps(item, ensure_ascii=True, sort_keys=True) for item in value[one_item_per_line])
        fields = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=True, sort_keys=True)}" for k, v in sorted(head.items())]
        fields.append(f' "{one_item_per_line}": [\n{body}\n ]')
        text = "{\n" + ",\n".join(fields) + "\n}"
    path.write_text(text + "\n", encoding="utf-8")


def write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


def save_bpe_files(tok: Tokenizer, directory: Path) -> None:
    """vocab.json + merges.txt as `tokenizers` writes them (the layout of GPT-2 and CLIP on the hub)."""
    with tempfile.TemporaryDirectory() as tmp:
        tok.model.save(tmp)
        shutil.copy(Path(tmp) / "vocab.json", directory / "vocab.json")
        shutil.copy(Path(tmp) / "merges.txt", directory / "merges.txt")


def tidy_tokenizer_config(directory: Path, **updates) -> None:
    """Drops the huge `model_max_length` sentinel, applies `updates`, rewrites deterministically."""
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("model_max_length", 0) > 1 << 40:
        del config["model_max_length"]
    for key in ("is_local", "local_files_only"):  # where this run loaded from, not part of the tokenizer
        config.pop(key, None)
    config.update(updates)
    write_json(path, config)


def rewrite_tokenizer_json(path: Path, edit=None) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    if edit:
        edit(data)
    write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------


class Reference:
    """One reference implementation: encode with/without special tokens, decode with/without skipping."""

    def __init__(self, name, encode, encode_plain, decode, decode_skip, context=None):
        self.name, self.encode, self.encode_plain = name, encode, encode_plain
        self.decode, self.decode_skip, self.context = decode, decode_skip, context

    @staticmethod
    def from_tokenizers(name: str, tok: Tokenizer) -> "Reference":
        return Reference(
            name,
            lambda s: tok.encode(s, add_special_tokens=True).ids,
            lambda s: tok.encode(s, add_special_tokens=False).ids,
            lambda ids: tok.decode(ids, skip_special_tokens=False),
            lambda ids: tok.decode(ids, skip_special_tokens=True),
        )

    @staticmethod
    def from_transformers(name: str, tok) -> "Reference":
        def context(s, length):
            return tok(s, padding="max_length", max_length=length, truncation=True)["input_ids"]

        return Reference(
            name,
            lambda s: tok.encode(s, add_special_tokens=True),
            lambda s: tok.encode(s, add_special_tokens=False),
            lambda ids: tok.decode(ids, skip_special_tokens=False),
            lambda ids: tok.decode(ids, skip_special_tokens=True),
            context,
        )


def run_reference(ref: Reference, strings: list[str]) -> list[dict]:
    cases = []
    for s in strings:
        ids = ref.encode(s)
        cases.append({"ids": ids, "plain": ref.encode_plain(s), "text": ref.decode(ids), "text_skip": ref.decode_skip(ids)})
    return cases


def differences(a: list[dict], b: list[dict], keys=("ids", "plain", "text", "text_skip")) -> dict[str, list[int]]:
    out = {}
    for key in keys:
        idx = [i for i, (x, y) in enumerate(zip(a, b)) if x[key] != y[key]]
        if idx:
            out[key] = idx
    return out


def context_subset(strings: list[str]) -> list[int]:
    """Strings for the context-length tests: every long one and a spread of short ones."""
    long_ones = [i for i, s in enumerate(strings) if len(s) > 150]
    short_ones = [i for i, s in enumerate(strings) if len(s) <= 150][::15]
    return sorted(set(long_ones + short_ones))


def expected_file(name: str, reference: str, vocab_size: int, cases: list[dict], token_decodes, extra=None) -> dict:
    value = {"name": name, "reference": reference, "vocab_size": vocab_size, "token_decodes": token_decodes}
    if extra:
        value.update(extra)
    value["cases"] = cases
    return value


QUIRKS: list[str] = []
SUMMARY: list[tuple[str, str, str]] = []


def note_quirk(text: str) -> None:
    QUIRKS.append(text)
    print("quirk:", text)


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


def compare_references(name: str, primary: list[dict], others: dict[str, list[dict]], strings: list[str]) -> None:
    for other_name, other in others.items():
        diff = differences(primary, other)
        if diff:
            summary = ", ".join(f"{k}: {len(v)} strings (e.g. {strings[v[0]]!r})" for k, v in diff.items())
            note_quirk(f"`{name}`: {other_name} differs from the primary reference on {summary}")


def files_only_copy(directory: Path, tmp: Path, names=("vocab.json", "merges.txt", "tokenizer_config.json")) -> Path:
    target = tmp / (directory.name + "-files")
    target.mkdir()
    for n in names:
        shutil.copy(directory / n, target / n)
    return target


def make_gpt2(corpus: list[str], strings: list[str], tmp: Path) -> Tokenizer:
    d = OUT / "gpt2"
    d.mkdir()
    tok = train_byte_level_bpe(corpus)
    eot = "<|endoftext|>"
    fast = GPT2TokenizerFast(tokenizer_object=tok, bos_token=eot, eos_token=eot, unk_token=eot)
    fast.save_pretrained(d)
    save_bpe_files(tok, d)
    tidy_tokenizer_config(d)
    rewrite_tokenizer_json(d / "tokenizer.json")

    primary = run_reference(Reference.from_tokenizers("tokenizers", Tokenizer.from_file(str(d / "tokenizer.json"))), strings)
    auto = AutoTokenizer.from_pretrained(d)
    files = AutoTokenizer.from_pretrained(files_only_copy(d, tmp))
    compare_references("gpt2", primary, {
        "transformers AutoTokenizer (tokenizer.json)": run_reference(Reference.from_transformers("t", auto), strings),
        "transformers AutoTokenizer (vocab.json + merges.txt)": run_reference(Reference.from_transformers("f", files), strings),
    }, strings)
    decodes = [auto.decode([i]) for i in range(len(auto))]
    write_json(d / "expected.json", expected_file(
        "gpt2", f"tokenizers {tokenizers.__version__} Tokenizer.from_file", len(auto), primary, decodes),
        one_item_per_line="cases")
    SUMMARY.append(("gpt2/", "GPT-2-style byte-level BPE trained here; tokenizer.json (pair merges), vocab.json + merges.txt",
                    "ByteLevel pre-tokenizer (GPT-2 pattern), no prefix space, `<|endoftext|>` special, both file formats"))
    return tok


def make_gpt2_variant(tok: Tokenizer, strings: list[str]) -> None:
    """The same vocabulary with the less common settings: prefix space, legacy "a b" merges, added tokens
    with lstrip / rstrip / single_word / normalized flags, special and non-special."""
    d = OUT / "gpt2-variant"
    d.mkdir()
    variant = Tokenizer.from_str(tok.to_str())
    variant.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    variant.add_special_tokens([
        tokenizers.AddedToken("<|im_start|>", special=True, normalized=False),
        tokenizers.AddedToken("<|im_end|>", special=True, normalized=False, rstrip=True),
        tokenizers.AddedToken("<pad>", special=True, normalized=False),
    ])
    variant.add_tokens([
        tokenizers.AddedToken("<sep>", lstrip=True, rstrip=True, normalized=False, special=False),
        tokenizers.AddedToken("circle", single_word=True, normalized=True, special=False),
        tokenizers.AddedToken("[INST]", normalized=True, special=False),
    ])
    data = json.loads(variant.to_str())
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
    write_text(d / "tokenizer.json", json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    reference = Tokenizer.from_file(str(d / "tokenizer.json"))
    primary = run_reference(Reference.from_tokenizers("tokenizers", reference), strings)
    decodes = [reference.decode([i], skip_special_tokens=False) for i in range(reference.get_vocab_size())]
    write_json(d / "expected.json", expected_file(
        "gpt2-variant", f"tokenizers {tokenizers.__version__} Tokenizer.from_file", reference.get_vocab_size(),
        primary, decodes), one_item_per_line="cases")
    SUMMARY.append(("gpt2-variant/", "the gpt2 vocabulary, tokenizer.json only, no tokenizer_config.json",
                    "add_prefix_space, legacy `\"a b\"` merges, added tokens with lstrip/rstrip/single_word/"
                    "normalized, special and non-special"))


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def make_gpt2_llama3(tok: Tokenizer, strings: list[str]) -> None:
    """The gpt2 vocabulary with Llama-3's layout: a Split on Llama-3's pattern (a regex the Swift code has no
    hand-written matcher for), ByteLevel without its own regex, and `ignore_merges`."""
    d = OUT / "gpt2-llama3"
    d.mkdir()
    data = json.loads(tok.to_str())
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    data["model"]["ignore_merges"] = True
    write_text(d / "tokenizer.json", json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    reference = Tokenizer.from_file(str(d / "tokenizer.json"))
    primary = run_reference(Reference.from_tokenizers("tokenizers", reference), strings)
    write_json(d / "expected.json", expected_file(
        "gpt2-llama3", f"tokenizers {tokenizers.__version__} Tokenizer.from_file", reference.get_vocab_size(),
        primary, []), one_item_per_line="cases")
    SUMMARY.append(("gpt2-llama3/", "the gpt2 vocabulary in Llama-3's layout, tokenizer.json only",
                    "Split on Llama-3's pattern (the NSRegularExpression fallback), ByteLevel without regex, "
                    "`ignore_merges`"))


def make_clip(corpus: list[str], strings: list[str], tmp: Path) -> None:
    d = OUT / "clip"
    d.mkdir()
    trained = train_clip_bpe(corpus)
    data = json.loads(trained.to_str())
    vocab, merges = data["model"]["vocab"], [tuple(m) for m in data["model"]["merges"]]
    clip = CLIPTokenizer(vocab=vocab, merges=merges)
    clip.save_pretrained(d)
    save_bpe_files(trained, d)
    tidy_tokenizer_config(d, model_max_length=77)
    rewrite_tokenizer_json(d / "tokenizer.json")
    auto = AutoTokenizer.from_pretrained(d)
    files = AutoTokenizer.from_pretrained(files_only_copy(d, tmp))
    primary = run_reference(Reference.from_transformers("transformers", auto), strings)
    raw = Tokenizer.from_file(str(d / "tokenizer.json"))
    raw_cases = run_reference(Reference.from_tokenizers("tokenizers", raw), strings)
    compare_references("clip", primary, {
        "transformers AutoTokenizer (vocab.json + merges.txt)": run_reference(Reference.from_transformers("f", files), strings),
    }, strings)
    diff = differences(primary, raw_cases)
    assert set(diff) <= {"text", "text_skip"}, diff
    if diff:
        note_quirk(f"`clip`: CLIPTokenizer's decode differs from the bare tokenizer.json decoder on "
                   f"{len(diff.get('text', []))} strings: transformers replaces `</w>` by a space and strips the "
                   f"result (`_wrap_decode_method_backend_tokenizer`); the ByteLevel decoder alone keeps `</w>`")
    subset = context_subset(strings)
    context = {str(n): [Reference.from_transformers("t", auto).context(strings[i], n) for i in subset] for n in CONTEXT_LENGTHS}
    decodes = [auto.decode([i]) for i in range(len(auto))]
    write_json(d / "expected.json", expected_file(
        "clip", f"transformers {transformers.__version__} CLIPTokenizer (AutoTokenizer)", len(auto), primary, decodes,
        {"context_strings": subset, "context": context, "pad_id": auto.pad_token_id}), one_item_per_line="cases")
    SUMMARY.append(("clip/", "CLIP-style BPE (`</w>`) trained here (plain BPE, see below), saved by transformers' "
                    "CLIPTokenizer; tokenizer.json, vocab.json + merges.txt",
                    "NFC + `\\s+`→space + lowercase, CLIP Split pattern + ByteLevel, end-of-word suffix, unknown "
                    "characters → `<|endoftext|>`, start/end tokens, context lengths 77 and 248"))


def ftfy_needs_encoding_fix(s: str) -> bool:
    return ftfy.fix_text(s) != ftfy.fix_text(s, fix_encoding=False)


def make_clip_openai(strings: list[str]) -> None:
    """CLIP's real vocabulary, laid out as openai/clip-vit-* on the hub (vocab.json + merges.txt)."""
    d = OUT / "clip-openai"
    d.mkdir()
    module, bpe_path = load_openai_simple_tokenizer()
    simple = module.SimpleTokenizer(str(bpe_path))
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    write_text(d / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
    write_text(d / "vocab.json", json.dumps(simple.encoder, ensure_ascii=False, separators=(",", ":")) + "\n")
    write_json(d / "tokenizer_config.json", {
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "model_max_length": 77, "tokenizer_class": "CLIPTokenizer",
        "do_lower_case": True, "errors": "replace",
    })
    hf = AutoTokenizer.from_pretrained(d)
    assert hf.get_vocab() == simple.encoder
    primary = run_reference(Reference.from_transformers("transformers", hf), strings)

    sot, eot = simple.encoder["<|startoftext|>"], simple.encoder["<|endoftext|>"]

    def openai_context(s: str, n: int) -> list[int]:
        # clip.tokenize(texts, context_length=n, truncate=True): pads with 0.
        tokens = [sot] + simple.encode(s) + [eot]
        if len(tokens) > n:
            tokens = tokens[:n]
            tokens[-1] = eot
        return tokens + [0] * (n - len(tokens))

    openai_cases = []
    for s in strings:
        plain = simple.encode(s)
        ids = [sot] + plain + [eot]
        skipped = [t for t in ids if t not in (sot, eot)]
        openai_cases.append({"ids": ids, "plain": plain, "text": simple.decode(ids), "text_skip": simple.decode(skipped)})
    needs_fix = [i for i, s in enumerate(strings) if ftfy_needs_encoding_fix(s)]
    diff = differences(primary, openai_cases, keys=("plain",))
    n_diff = len(diff.get("plain", []))
    note_quirk(f"`clip-openai`: OpenAI's SimpleTokenizer and transformers' CLIPTokenizer give different ids for "
               f"{n_diff} of {len(strings)} strings: ftfy (full-width forms, ligatures, curly quotes, C1 controls, control "
               f"characters), html.unescape, Python's strip() and lower() (final sigma, Unicode 14), special-token "
               f"text matched after lowercasing, and re.IGNORECASE letting `'ſ` count as the contraction `'s`")
    subset = context_subset(strings)
    hf_ref = Reference.from_transformers("t", hf)
    context = {str(n): [hf_ref.context(strings[i], n) for i in subset] for n in CONTEXT_LENGTHS}
    openai_context_values = {str(n): [openai_context(strings[i], n) for i in subset] for n in CONTEXT_LENGTHS}
    step = 13
    decodes = [hf.decode([i]) for i in range(0, len(hf), step)]
    write_json(d / "expected.json", expected_file(
        "clip-openai", f"transformers {transformers.__version__} CLIPTokenizer from vocab.json + merges.txt",
        len(hf), primary, decodes,
        {"token_decode_step": step, "context_strings": subset, "context": context, "pad_id": hf.pad_token_id}),
        one_item_per_line="cases")
    write_json(d / "expected-openai.json", expected_file(
        "clip-openai", "OpenAI CLIP simple_tokenizer.SimpleTokenizer (openai-clip wheel), ftfy "
        f"{ftfy.__version__}; `text_skip` is the decode of the ids without the two special tokens", len(simple.encoder),
        openai_cases, [], {"ftfy_encoding_fix": needs_fix, "context_strings": subset, "context": openai_context_values,
                           "pad_id": 0}), one_item_per_line="cases")
    SUMMARY.append(("clip-openai/", "CLIP's real 49408-token vocabulary from `bpe_simple_vocab_16e6.txt.gz`, as "
                    "vocab.json + merges.txt", "the transformers reference and OpenAI's SimpleTokenizer "
                    "(`expected-openai.json`; strings that need ftfy's mojibake repair are listed and skipped)"))


def make_llama(corpus: list[str], strings: list[str], tmp: Path) -> None:
    model = train_sentencepiece(corpus, tmp)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    sp_ids = [[1] + sp.encode(s) for s in strings]
    spm_dir = tmp / "spm"
    spm_dir.mkdir()
    shutil.copy(model, spm_dir / "tokenizer.model")

    # The current form: converted with legacy=False (Metaspace pre-tokenizer, prepend_scheme "first").
    d = OUT / "llama"
    d.mkdir()
    llama = LlamaTokenizer.from_pretrained(spm_dir, legacy=False, add_bos_token=True, add_eos_token=False)
    llama.add_tokens([AddedToken("<image>", special=True, normalized=False),
                      AddedToken("<|im_start|>", special=True, normalized=False),
                      AddedToken("<|im_end|>", special=True, normalized=False)], special_tokens=True)
    llama.save_pretrained(d)
    tidy_tokenizer_config(d, add_bos_token=True, add_eos_token=False, legacy=False)
    rewrite_tokenizer_json(d / "tokenizer.json")
    auto = AutoTokenizer.from_pretrained(d)
    primary = run_reference(Reference.from_tokenizers("tokenizers", Tokenizer.from_file(str(d / "tokenizer.json"))), strings)
    compare_references("llama", primary, {"transformers AutoTokenizer": run_reference(Reference.from_transformers("t", auto), strings)}, strings)
    n = sum(1 for c, s in zip(primary, sp_ids) if c["ids"] != s)
    note_quirk(f"`llama` (Metaspace, prepend_scheme first): ids differ from sentencepiece itself on {n} of "
               f"{len(strings)} strings (leading spaces: Metaspace does not prepend `▁` to text that already "
               f"starts with a space; special-token text, which sentencepiece reads as text)")
    decodes = [auto.decode([i]) for i in range(len(auto))]
    write_json(d / "expected.json", expected_file(
        "llama", f"tokenizers {tokenizers.__version__} Tokenizer.from_file", len(auto), primary, decodes,
        {"sentencepiece_ids": sp_ids}), one_item_per_line="cases")
    SUMMARY.append(("llama/", "SentencePiece BPE (byte fallback) trained here, converted by transformers' "
                    "LlamaTokenizer (legacy=False); `<image>`, `<|im_start|>`, `<|im_end|>` added as special",
                    "Metaspace pre-tokenizer (prepend_scheme first), byte fallback `<0xNN>`, `<s>` via "
                    "TemplateProcessing, decoder Replace/ByteFallback/Fuse/Strip"))

    # Metaspace that splits into words and always prepends (older Metaspace configurations), same vocabulary.
    d_split = OUT / "llama-split"
    d_split.mkdir()

    def to_split_layout(data):
        data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
        data["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
            {"type": "ByteFallback"}, {"type": "Fuse"}]}

    shutil.copy(d / "tokenizer.json", d_split / "tokenizer.json")
    rewrite_tokenizer_json(d_split / "tokenizer.json", to_split_layout)
    reference = Tokenizer.from_file(str(d_split / "tokenizer.json"))
    cases = run_reference(Reference.from_tokenizers("tokenizers", reference), strings)
    write_json(d_split / "expected.json", expected_file(
        "llama-split", f"tokenizers {tokenizers.__version__} Tokenizer.from_file", reference.get_vocab_size(),
        cases, []), one_item_per_line="cases")
    SUMMARY.append(("llama-split/", "the llama vocabulary, tokenizer.json only",
                    "Metaspace pre-tokenizer that splits words (prepend_scheme always), Metaspace decoder"))

    # The legacy form LLaVA-1.5 / Vicuna checkpoints ship: normalizer Prepend("▁") + Replace(" ", "▁").
    d = OUT / "llama-legacy"
    d.mkdir()
    legacy = LlamaTokenizer.from_pretrained(spm_dir, legacy=True, add_bos_token=True, add_eos_token=False)
    legacy.add_tokens([AddedToken("<image>", special=True, normalized=False),
                       AddedToken("<pad>", special=True, normalized=False)], special_tokens=True)
    legacy.save_pretrained(d)
    tidy_tokenizer_config(d, add_bos_token=True, add_eos_token=False, legacy=True)

    def to_legacy_layout(data):
        data["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        data["pre_tokenizer"] = None
        data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]

    rewrite_tokenizer_json(d / "tokenizer.json", to_legacy_layout)
    reference = Tokenizer.from_file(str(d / "tokenizer.json"))
    primary = run_reference(Reference.from_tokenizers("tokenizers", reference), strings)
    auto = AutoTokenizer.from_pretrained(d)
    compare_references("llama-legacy", primary, {
        "transformers 5 AutoTokenizer (which rebuilds a Metaspace pre-tokenizer and ignores the file's normalizer)":
            run_reference(Reference.from_transformers("t", auto), strings)}, strings)
    n = sum(1 for c, s in zip(primary, sp_ids) if c["ids"] != s)
    note_quirk(f"`llama-legacy` (Prepend + Replace normalizer): ids differ from sentencepiece itself on {n} of "
               f"{len(strings)} strings (special-token text, which sentencepiece reads as text)")
    decodes = [reference.decode([i], skip_special_tokens=False) for i in range(reference.get_vocab_size())]
    write_json(d / "expected.json", expected_file(
        "llama-legacy", f"tokenizers {tokenizers.__version__} Tokenizer.from_file", reference.get_vocab_size(),
        primary, decodes, {"sentencepiece_ids": sp_ids}), one_item_per_line="cases")
    SUMMARY.append(("llama-legacy/", "the llama vocabulary in the legacy layout of LLaVA-1.5 / Vicuna "
                    "tokenizer.json files (legacy `\"a b\"` merges); `<image>`, `<pad>` special",
                    "normalizer Prepend(`▁`) + Replace(` `→`▁`), no pre-tokenizer, `legacy: true` in "
                    "tokenizer_config.json"))


def check_reference_behaviour(tmp: Path) -> None:
    """Facts about the references that the Swift code relies on, checked here so the README states them
    only while they hold."""
    # Legacy merges need exactly one space.
    data = {"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3}, "merges": ["a b c"]}}
    try:
        Tokenizer.from_str(json.dumps(data))
        raise AssertionError("a three-part merge was accepted")
    except Exception as e:  # noqa: BLE001 - the crate's error type is not exported
        assert "AssertionError" not in type(e).__name__
    note_quirk("`tokenizers` rejects a legacy merge string with more than one space (`\"a b c\"`): it splits on "
               "every space and wants exactly two parts (not \"split on the first space\")")
    # transformers 5 ignores clean_up_tokenization_spaces for BPE tokenizers.
    gpt2 = AutoTokenizer.from_pretrained(OUT / "gpt2")
    ids = gpt2.encode("Hello , world . I 'm here")
    assert gpt2.decode(ids, clean_up_tokenization_spaces=True) == gpt2.decode(ids) == "Hello , world . I 'm here"
    note_quirk("transformers 5 skips `clean_up_tokenization_spaces` for BPE models even when asked (it would strip "
               "spaces before punctuation); transformers 4 applied it. Swift's `decode` follows 5; "
               "`cleanUpTokenizationSpaces(_:)` is there for the old behaviour")
    # ByteFallback replaces a whole run of byte tokens when any of it is incomplete.
    llama = Tokenizer.from_file(str(OUT / "llama" / "tokenizer.json"))
    cc, x80 = llama.token_to_id("<0xCC>"), llama.token_to_id("<0x80>")
    assert llama.decode([cc, x80]) == "\u0300" and llama.decode([cc, x80, cc]) == "\ufffd" * 3
    note_quirk("the ByteFallback decoder turns every byte of a run into U+FFFD when the run is not valid UTF-8 "
               "as a whole: [<0xCC>, <0x80>] decodes to U+0300 but [<0xCC>, <0x80>, <0xCC>] to three U+FFFD, so "
               "the decode of a prefix can take back a character (the streaming detokenizer only ever emits text "
               "that the full decode keeps)")
    # Oniguruma's Unicode tables (16.0) against Python's regex module (17.0).
    pieces = pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str("a\u088fb")
    assert len(pieces) == 3, pieces
    note_quirk("the pattern engine inside `tokenizers` (Oniguruma) classifies by Unicode 16: U+088F, a letter "
               "since Unicode 17, splits `a\\u088fb` into three pieces; Python's `regex` (OpenAI CLIP) and Swift "
               "use Unicode 17, so the Swift patterns treat scalars newer than 16.0 as \"other\" for the "
               "Hugging Face reference. Python 3.11's `str.lower()` uses Unicode 14 (U+1C89 stays upper case)")
    # transformers 5 and SentencePiece models.
    spm_dir = tmp / "spm"
    plain = LlamaTokenizer.from_pretrained(spm_dir)
    assert plain.encode("the red square")[0] != 1
    direct = LlamaTokenizer(vocab_file=str(spm_dir / "tokenizer.model"))
    assert direct.encode("the red square") == []
    note_quirk("transformers 5 converts a SentencePiece model with `add_bos_token` off unless told (Llama's "
               "tokenizer_config.json says true; the fixtures set it), and `LlamaTokenizer(vocab_file=...)` without "
               "`from_pretrained` has an empty vocabulary and encodes everything to []")
    note_quirk("`tokenizers`' BpeTrainer breaks ties between equally frequent pairs by symbol ids that it assigns "
               "from a hash map when `end_of_word_suffix` is set, so CLIP-style training differed from run to run; "
               "the script trains the CLIP-style vocabulary with its own plain BPE instead")


def write_readme(strings: list[str]) -> None:
    sizes = []
    for d in sorted(p for p in OUT.iterdir() if p.is_dir()):
        total = sum(f.stat().st_size for f in d.iterdir())
        sizes.append(f"{d.name}/ {total / 1024:.0f} KiB")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    rows = "\n".join(f"| `{a}` | {b} | {c} |" for a, b, c in SUMMARY)
    quirks = "\n".join(f"- {q}" for q in QUIRKS)
    text = f"""# Tokenizer parity fixtures

Every file in this directory is generated by `Scripts/make_tokenizer_fixtures.py`, this README included.
Never edit them by hand. The script writes its own training text (synthetic scene sentences in the
project's world plus short paragraphs in {len(MULTILINGUAL) - 1} other languages and emoji), trains small
real tokenizers (vocabularies of up to {VOCAB_SIZE}) with `tokenizers` {tokenizers.__version__} and `sentencepiece`
{spm.__version__}, saves them the way `transformers` {transformers.__version__} does, and records what the
reference implementations produce for the {len(strings)} test strings in `corpus.json`. To regenerate (the
output is byte-for-byte deterministic):

    python3 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install -r Scripts/requirements.txt
    .venv-fixtures/bin/python Scripts/make_tokenizer_fixtures.py

`openai-clip` ships OpenAI's `simple_tokenizer.py` and CLIP's real `bpe_simple_vocab_16e6.txt.gz`; the
script loads `simple_tokenizer.py` by path, since the package's `clip/__init__.py` imports torchvision.

| Directory | Tokenizer | What it exercises |
|---|---|---|
{rows}

Each `expected.json` holds, per string of `corpus.json` (same order): `ids` (encoded with special tokens),
`plain` (without), `text` (decode of `ids`) and `text_skip` (decode of `ids` skipping special tokens);
`token_decodes` is the decode of every single id (every `token_decode_step`-th id for `clip-openai`), which
pins down how partial UTF-8 is replaced. CLIP files also hold `context`: the ids padded/truncated to 77 and
248 tokens for the strings listed in `context_strings` (transformers pads with `pad_id`, OpenAI's
`clip.tokenize` with 0). The llama files hold `sentencepiece_ids` (`[1] + sp.encode(text)`) for comparison only.

Where tokenizer.json and transformers 5 disagree (`llama-legacy`), the reference is the `tokenizers` library
reading the file, which is also what transformers 4 did: that is the pipeline the checkpoints were made with.
The Swift tests that read these files are in `Tests/TokenizersTests`.

## Reference quirks found while generating

{quirks}

Sizes: {", ".join(sizes)}; {total / 1024 / 1024:.2f} MiB in all.
"""
    write_text(OUT / "README.md", text)


def main() -> None:
    hf_logging.set_verbosity_error()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    corpus = training_corpus()
    strings = test_corpus()
    write_json(OUT / "corpus.json", {"strings": strings}, one_item_per_line="strings")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gpt2 = make_gpt2(corpus, strings, tmp)
        make_gpt2_variant(gpt2, strings)
        make_gpt2_llama3(gpt2, strings)
        make_clip(corpus, strings, tmp)
        make_clip_openai(strings)
        make_llama(corpus, strings, tmp)
        check_reference_behaviour(tmp)
    write_readme(strings)
    digest = hashlib.sha256()
    for f in sorted(OUT.rglob("*")):
        if f.is_file():
            digest.update(f.read_bytes())
    print(f"wrote {OUT} ({len(strings)} strings), content sha256 {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
