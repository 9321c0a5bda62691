#!/bin/bash
# Fine-tuning real trained weights: stories260K (../shared/fixtures) trained on children's stories in its
# domain, all about one new character (a purple dragon named Zorb who bakes), lowers its held-out loss on
# more such stories, with full fine-tuning and with LoRA (the held-out stories are the last quarter of the
# windows, never trained on).
source tests/lib.sh
[ -f "$STORIES" ] || skip "stories260K.gguf is not at $STORIES (../shared/fixtures is not on this machine)"
python3 - "$TMP/zorb.txt" <<'PY'
import random, sys
r = random.Random(7)
names = ["Lily", "Tom", "Sue", "Ben", "Anna", "Max"]
things = ["a cake", "a pie", "some cookies", "a big bun", "a sweet tart"]
places = ["in his cave", "by the river", "on the hill", "in the park"]
out = []
for i in range(40):
    n, t, p = r.choice(names), r.choice(things), r.choice(places)
    out.append("Once upon a time, there was a purple dragon named Zorb. Zorb loved to bake. One day, Zorb baked %s %s. "
               "%s came to see Zorb. \"Can I have some?\" asked %s. Zorb smiled and said, \"Yes, let us share!\" "
               "Zorb and %s ate %s together, and they were very happy." % (t, p, n, n, n, t))
open(sys.argv[1], "w").write("<|end_of_text|>".join(out))
PY
C=(-m "$STORIES" --data "$TMP/zorb.txt" --objective cpt --seq-len 48 --val-split 0.25 --no-shuffle -t 2)
val() { grep -o 'val-loss [0-9.]*' "$1" | tail -n 1 | cut -d' ' -f2; }
"$HERD" train "${C[@]}" --method full --lr 0 --steps 1 --out "$TMP/base.gguf" 2>"$TMP/base.log" || { cat "$TMP/base.log"; die "base"; }
for method in full lora; do
    lr=2e-3; [ $method = lora ] && lr=1e-2
    "$HERD" train "${C[@]}" --method $method --lr $lr --warmup 2 --steps 40 --batch 4 --out "$TMP/$method.gguf" \
        2>"$TMP/$method.log" || { cat "$TMP/$method.log"; die "$method"; }
    b=$(val "$TMP/base.log") a=$(val "$TMP/$method.log")
    echo "$method: held-out loss $b -> $a"
    python3 -c "import sys; sys.exit(0 if float(sys.argv[2]) < float(sys.argv[1]) - 0.05 else 1)" "$b" "$a" ||
        die "$method: the held-out loss did not fall ($b -> $a)"
done
# the fine-tuned model still tells a story in its domain
"$HERD" run -m "$TMP/full.gguf" -p "Once upon a time" -n 24 --temp 0 2>/dev/null | head -c 200; echo
