#!/bin/bash
# The Llama 3.1 chat format (`herd format`, used by `herd chat`) against the official template
# (llama.cpp's models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja) rendered by
# @huggingface/jinja, as transformers renders it: byte-identical text, and identical token ids
# (herd's tokenizer vs llama.cpp's, special tokens parsed).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
tmpl=$REF/llama.cpp/templates/meta-llama-Llama-3.1-8B-Instruct.jinja
cases=tests/data/chat_cases.json
node tests/ref/render_template.mjs "$tmpl" "$cases" "$TMP/want" || die "jinja rendering failed"
n=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).length)' "$cases")
fails=0
for ((i = 0; i < n; i++)); do
    node -e 'const c=JSON.parse(require("fs").readFileSync(process.argv[1]))[process.argv[2]];
             require("fs").writeFileSync(process.argv[3], JSON.stringify(c.messages));
             console.log((c.add_generation_prompt ? "" : "--no-generation-prompt ") + (c.date_string ? c.date_string : ""))' \
        "$cases" "$i" "$TMP/m.json" >"$TMP/opts"
    read -r flag_or_date <"$TMP/opts" || true
    args=()
    case "$flag_or_date" in
        --no-generation-prompt*) args+=(--no-generation-prompt); d=${flag_or_date#--no-generation-prompt }; [ "$d" != "$flag_or_date" ] && [ -n "$d" ] && args+=(--date "$d") ;;
        "") ;;
        *) args+=(--date "$flag_or_date") ;;
    esac
    "$HERD" format --messages "$TMP/m.json" "${args[@]}" >"$TMP/got.txt" || { echo "case $i: herd format failed"; fails=$((fails + 1)); continue; }
    if ! cmp -s "$TMP/got.txt" "$TMP/want/$i.txt"; then
        echo "case $i: text differs"; diff <(od -c "$TMP/want/$i.txt") <(od -c "$TMP/got.txt") | head -10
        fails=$((fails + 1)); continue
    fi
    herd_ids=$("$HERD" tokenize -m "$VOCAB_BPE" -f "$TMP/got.txt" --special --no-bos)
    ref_ids=$(node tests/ref/tokenize.mjs --special "$VOCAB_BPE" <"$TMP/want/$i.txt" 2>/dev/null)
    if [ -z "$ref_ids" ] || [ "$herd_ids" != "$ref_ids" ]; then
        echo "case $i: token ids differ: llama.cpp ${ref_ids:-(failed)} herd $herd_ids"; fails=$((fails + 1)); continue
    fi
    # herd's own prompt tokenization keeps message contents plain: equal to the above unless a
    # content holds special-token text, which must then not become a special token
    chat_ids=$("$HERD" format -m "$VOCAB_BPE" --messages "$TMP/m.json" "${args[@]}" --tokens)
    if grep -q '<|' "$TMP/m.json"; then
        n_eot_text=$(grep -o '<|eot_id|>' "$TMP/got.txt" | wc -l); n_eot_ids=$(echo "$chat_ids" | grep -o '128009' | wc -l)
        if [ "$n_eot_ids" -ne $((n_eot_text - 1)) ]; then
            echo "case $i: <|eot_id|> typed in a message became a special token"; fails=$((fails + 1)); continue
        fi
    elif [ "$chat_ids" != "$herd_ids" ]; then
        echo "case $i: herd format --tokens differs from tokenizing the text"; fails=$((fails + 1)); continue
    fi
    echo "case $i: identical ($(wc -c <"$TMP/got.txt") bytes, $(echo "$herd_ids" | tr -cd ',' | wc -c) ids identical)"
done
[ $fails -eq 0 ] || die "$fails of $n conversations differ from the official template"
echo "all $n conversations render byte-identically to the official template"
