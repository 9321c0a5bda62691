#!/usr/bin/python3
"""Reference side of tests/conformance/prompt_guard_tokenizer.sh (Debian's python3-sentencepiece).

  unigram_ref.py tojson MODEL OUT.json     the equivalent Hugging Face tokenizer.json (what
                                           transformers' DebertaV2Converter writes from a .model)
  unigram_ref.py encode MODEL < texts.jsonl   one JSON array per line: [CLS] + ids[:510] + [SEP]
"""
import base64, json, sys
import sentencepiece as spm


def fields(buf):
    """(number, wire, value) of the top-level protobuf fields of buf (varint and length-delimited)."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(buf, i)
        elif wire == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        else:
            raise ValueError("wire type %d" % wire)
        yield num, wire, v


def varint(buf, i):
    v = s = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << s
        s += 7
        if not b & 0x80:
            return v, i


def tojson(model, out):
    raw = open(model, "rb").read()
    sp = spm.SentencePieceProcessor(model_file=model)
    charsmap, byte_fallback = b"", False
    for num, wire, v in fields(raw):
        if num == 3:
            for n2, w2, v2 in fields(v):
                if n2 == 2:
                    charsmap = v2
        if num == 2:
            for n2, w2, v2 in fields(v):
                if n2 == 35:
                    byte_fallback = bool(v2)
    vocab = [[sp.id_to_piece(i), sp.get_score(i)] for i in range(sp.get_piece_size())]
    added = [{"id": i, "content": sp.id_to_piece(i), "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}]},
        "post_processor": None, "decoder": None,
        "model": {"type": "Unigram", "unk_id": sp.unk_id(), "vocab": vocab, "byte_fallback": byte_fallback},
    }
    json.dump(tok, open(out, "w"), ensure_ascii=False)


def encode(model):
    sp = spm.SentencePieceProcessor(model_file=model)
    cls, sep = sp.piece_to_id("[CLS]"), sp.piece_to_id("[SEP]")
    for line in sys.stdin:
        ids = sp.encode(json.loads(line))
        print(json.dumps([cls] + ids[:510] + [sep]))


if __name__ == "__main__":
    if sys.argv[1] == "tojson":
        tojson(sys.argv[2], sys.argv[3])
    else:
        encode(sys.argv[2])
