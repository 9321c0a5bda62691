#!/bin/bash
# The SentencePiece unigram tokenizer of Prompt Guard (src/tokenizer/unigram.c) against Debian's
# python3-sentencepiece: unigram models trained here with Debian's spm_train (nmt_nfkc, mDeBERTa's
# special ids [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3; byte fallback off and on) over the multilingual samples
# the BPE tests use; `herd tokenize` on a Prompt Guard directory must print [CLS] + sentencepiece's ids
# (truncated to 510) + [SEP] for every sample, every line of the corpus, and edge cases (spaces, NFKC
# forms, unknown characters, a text past one window), once from spm.model and once from the
# equivalent tokenizer.json. Then corrupt .model files give one error line, never a crash.
. tests/lib.sh
need_spm() { /usr/bin/python3 -c 'import sentencepiece' 2>/dev/null && command -v spm_train >/dev/null; }
need_spm || {
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-sentencepiece sentencepiece) \
        >/dev/null 2>&1 || true
    need_spm || { [ "${CI:-}" = "true" ] && die "python3-sentencepiece could not be installed"; skip "python3-sentencepiece / spm_train are not installed"; }
}
PY="/usr/bin/python3 tests/tools/unigram_ref.py"
SAMPLES=tests/data/tokenizer/samples.txt
# the corpus: every sample text, one per line
/usr/bin/python3 - "$SAMPLES" "$TMP" <<'PYEOF'
import json, sys
src, tmp = sys.argv[1], sys.argv[2]
texts = open(src, encoding="utf-8").read().split("\n%%%%\n")[1:]
texts = [t.strip("\n") for t in texts if t.strip("\n")]
with open(tmp + "/corpus.txt", "w") as f:
    for t in texts:
        for line in t.split("\n"):
            if line.strip():
                f.write(line + "\n")
lines = [l.rstrip("\n") for l in open(tmp + "/corpus.txt")]
edge = ["", " ", "   ", "a", " a", "a ", "  two   spaces  ", "tab\there", "new\nline", "\u3000ideographic space",
        "ＦＵＬＬＷＩＤＴＨ ＡＢＣ １２３", "ﬁ ligature ﬀ", "① ② ③", "e\u0301 decomposed", "Å Å", "ＡＢＣ　ＤＥＦ",
        "emoji 😀🙂 and rare 龘 𠜎", "\u200bzero\u200bwidth", "∮ E⋅da = Q", "Ʃ Ǆ ǅ ǆ", "x" * 3000,
        " ".join(lines)[:2500], "\u2581 already escaped \u2581\u2581", "[CLS] text [SEP]", "<0x41> byte text"]
with open(tmp + "/texts.jsonl", "w") as f:
    for t in texts + lines + edge:
        f.write(json.dumps(t) + "\n")
PYEOF
[ -s "$TMP/corpus.txt" ] || die "no corpus"
n_texts=$(wc -l < "$TMP/texts.jsonl")
for bf in false true; do
    D=$TMP/pg-$bf
    mkdir -p "$D"
    spm_train --input="$TMP/corpus.txt" --model_prefix="$D/spm" --model_type=unigram --vocab_size=$([ $bf = true ] && echo 1000 || echo 400) \
        --hard_vocab_limit=false --character_coverage=0.98 --byte_fallback=$bf \
        --pad_id=0 --bos_id=1 --eos_id=2 --unk_id=3 --pad_piece='[PAD]' --bos_piece='[CLS]' --eos_piece='[SEP]' \
        --unk_piece='[UNK]' --num_threads=2 --minloglevel=2 >"$TMP/train.log" 2>&1 || { cat "$TMP/train.log"; die "spm_train ($bf)"; }
    rm -f "$D/spm.vocab"
    echo '{"model_type": "deberta-v2", "architectures": ["DebertaV2ForSequenceClassification"]}' > "$D/config.json"
    $PY encode "$D/spm.model" < "$TMP/texts.jsonl" > "$TMP/want-$bf.txt" || die "sentencepiece encode ($bf)"
    "$HERD" tokenize -m "$D" --jsonl < "$TMP/texts.jsonl" > "$TMP/got-$bf.txt" || die "herd tokenize on spm.model ($bf)"
    if ! cmp -s "$TMP/want-$bf.txt" "$TMP/got-$bf.txt"; then
        diff "$TMP/want-$bf.txt" "$TMP/got-$bf.txt" | head -8
        die "spm.model (byte_fallback=$bf): ids differ from sentencepiece's"
    fi
    J=$TMP/pj-$bf
    mkdir -p "$J"
    cp "$D/config.json" "$J/"
    $PY tojson "$D/spm.model" "$J/tokenizer.json" || die "tokenizer.json ($bf)"
    "$HERD" tokenize -m "$J" --jsonl < "$TMP/texts.jsonl" > "$TMP/gotj-$bf.txt" || die "herd tokenize on tokenizer.json ($bf)"
    if ! cmp -s "$TMP/want-$bf.txt" "$TMP/gotj-$bf.txt"; then
        diff "$TMP/want-$bf.txt" "$TMP/gotj-$bf.txt" | head -8
        die "tokenizer.json (byte_fallback=$bf): ids differ from sentencepiece's"
    fi
    # -p gives the same as the JSONL line
    want=$(sed -n 2p "$TMP/want-$bf.txt")
    got=$("$HERD" tokenize -m "$D" -p "$(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[1]), end="")' "$TMP/texts.jsonl")")
    [ "$got" = "$want" ] || die "-p: $got, expected $want"
    echo "byte_fallback=$bf: $n_texts texts equal (spm.model and tokenizer.json)"
done
# the byte-fallback path is exercised: some expected id is a <0xXX> piece
/usr/bin/python3 -c '
import json, sys, sentencepiece as s
p = s.SentencePieceProcessor(model_file=sys.argv[1])
sys.exit(0 if any(p.is_byte(i) for l in open(sys.argv[2]) for i in json.loads(l)) else 1)' "$TMP/pg-true/spm.model" "$TMP/want-true.txt" \
    || die "no byte piece in the byte_fallback=true reference (test too weak)"
# the unknown path is exercised: some expected line holds [UNK] (3) without byte fallback
grep -q ', 3,' "$TMP/want-false.txt" || die "no unknown piece in the byte_fallback=false reference (test too weak)"

# bad input: one error line, non-zero exit, no crash
B=$TMP/bad; mkdir -p "$B"; cp "$TMP/pg-false/config.json" "$B/"
check_bad() { # NAME: herd must fail with exactly one line on stderr
    local out rc
    out=$("$HERD" tokenize -m "$B" -p "hello" 2>&1 >/dev/null); rc=$?
    [ $rc -ne 0 ] && [ $rc -lt 128 ] || die "$1: exit $rc"
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || die "$1: not one error line: $out"
    echo "$1: $out"
}
head -c 1000 "$TMP/pg-false/spm.model" > "$B/spm.model"; check_bad "truncated .model"
printf '\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff' > "$B/spm.model"; check_bad "garbage .model"
: > "$B/spm.model"; check_bad "empty .model"
rm -f "$B/spm.model"; check_bad "no tokenizer file"
echo '{"model": {"type": "BPE"}}' > "$B/tokenizer.json"; check_bad "BPE tokenizer.json"
echo '{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["[UNK]", 0]]}, "pre_tokenizer": {"type": "Metaspace"}, "normalizer": {"type": "Precompiled", "precompiled_charsmap": "AAAA"}}' > "$B/tokenizer.json"; check_bad "corrupt charsmap"
echo "ok"
