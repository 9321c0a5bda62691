#!/bin/bash
# Vector stores (src/rag, herd rag) on a random-weight model with the real Llama 3 tokenizer:
#   - a chunk's own text as the query returns that chunk as the top hit (score ~1)
#   - exact search equals a brute-force cosine over every vector in the SQLite file (python3's sqlite3),
#     the query vector from `herd embed` (the same pooling): same ids in the same order, scores to 1e-5
#   - metadata filters keep only matching chunks; deleting a document removes its chunks from file and results
#   - kill -9 in the middle of a document's transaction: reopened, the store passes integrity_check,
#     every document has all its chunks, the killed file is absent; indexing it again works
#   - herd chat --store puts the retrieved chunks, numbered with their sources, into the prompt
#   - bad input (unknown type, missing file, empty file, PDF without pdftotext, bad filter) fails clearly
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
PY=/usr/bin/python3
$PY -c 'import sqlite3' 2>/dev/null || skip "python3's sqlite3 module is missing"
m=$TMP/m.gguf
"$HERD" synth --vocab "$VOCAB_BPE" -o "$m" --n-embd 128 --n-head 4 --n-head-kv 2 --head-dim 32 --n-ff 256 \
    --n-layer 2 --type f32 --seed 3 >/dev/null || die "synth"
$PY - "$TMP" <<'PYEOF'
import random, sys
d = sys.argv[1]
random.seed(5)
w = ("apple river stone cloud seven music garden window orange silver paper engine planet forest yellow dance "
     "copper lantern violet harbor meadow thunder candle marble falcon ribbon glacier pepper").split()
for i in range(4):
    open(f"{d}/d{i}.txt", "w").write(" ".join(random.choice(w) for _ in range(220)) + "\n")
open(f"{d}/big.md", "w").write("# Big\n\n" + " ".join(random.choice(w) for _ in range(1500)) + "\n")
open(f"{d}/p.html", "w").write("<html><head><style>p{}</style><script>var a='<b>';</script></head><body>"
    "<h1>Fish &amp; chips</h1><p>The quick brown fox jumps over the lazy dog.</p></body></html>")
open(f"{d}/empty.txt", "w").write("")
PYEOF
S=$TMP/st
"$HERD" rag index --store $S -m "$m" --chunk 64 "$TMP"/d0.txt "$TMP"/d1.txt "$TMP"/d2.txt "$TMP"/p.html >/dev/null ||
    die "index"
"$HERD" rag index --store $S --metadata '{"lang":"fr","n":3}' "$TMP"/d3.txt >/dev/null || die "index with metadata"

# the HTML document's text: tags, style and script gone, entity decoded
$PY - $S/store.sqlite <<'PYEOF' || die "HTML text"
import sqlite3, sys
t = sqlite3.connect(sys.argv[1]).execute("select k.text from chunks k join documents d on k.doc_id=d.id where d.source like '%p.html'").fetchone()[0]
assert t == "Fish & chips\n\nThe quick brown fox jumps over the lazy dog.", repr(t)
PYEOF

# own text -> top hit, and exact search == brute force
check_query() { # CHUNK_ID  (query = that chunk's text)
    local id=$1 text
    text=$($PY -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select text from chunks where id=?",(int(sys.argv[2]),)).fetchone()[0], end="")' $S/store.sqlite $id)
    "$HERD" rag query --store $S -q "$text" -k 8 --json >"$TMP/hits.json" || die "query"
    "$HERD" embed -m "$m" -p "$text" >"$TMP/q.json" || die "embed"
    $PY - $S/store.sqlite "$TMP/q.json" "$TMP/hits.json" $id <<'PYEOF'
import json, math, sqlite3, struct, sys
db, q, hits, want = sqlite3.connect(sys.argv[1]), json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), int(sys.argv[4])
rows = db.execute("select k.id, k.vector from chunks k join documents d on k.doc_id = d.id where d.collection = 'default'").fetchall()
scores = []
for cid, blob in rows:
    v = struct.unpack(f"<{len(blob)//4}f", blob)
    nv = math.sqrt(sum(x * x for x in v))
    scores.append((-sum(a * b for a, b in zip(q, v)) / nv, cid))
scores.sort()
brute = [(cid, -s) for s, cid in scores[:8]]
got = [(h["chunk_id"], h["score"]) for h in hits]
ok = [c for c, _ in got] == [c for c, _ in brute] and all(abs(a[1] - b[1]) < 1e-5 for a, b in zip(got, brute))
top_ok = got[0][0] == want and got[0][1] > 0.999
print(f"  chunk {want}: top hit {got[0][0]} score {got[0][1]:.6f}; 8 hits vs brute force over {len(rows)}: "
      f"{'same' if ok else 'DIFFERENT'} (max |d score| {max(abs(a[1]-b[1]) for a, b in zip(got, brute)):.1e})")
sys.exit(0 if ok and top_ok else 1)
PYEOF
}
for id in 1 3 6 9 14; do check_query $id || die "query for chunk $id"; done

# filters
"$HERD" rag query --store $S -q "apple river" -k 50 --filter '{"lang":"fr"}' --json |
    $PY -c 'import json,sys; h=json.load(sys.stdin); assert h and all(x["source"].endswith("d3.txt") for x in h), h; print(f"  filter lang=fr: {len(h)} hits, all from d3.txt")' ||
    die "plain filter"
"$HERD" rag query --store $S -q "apple river" -k 50 --filter '{"type":"and","filters":[{"type":"eq","key":"lang","value":"fr"},{"type":"gte","key":"n","value":4}]}' --json |
    $PY -c 'import json,sys; h=json.load(sys.stdin); assert h == [], h' || die "compound filter (n >= 4) matched"
"$HERD" rag query --store $S -q x --filter '{"type":"between"}' 2>&1 | grep -q "malformed filter" || die "bad filter not refused"

# delete
doc=$($PY -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select doc_id from chunks where id=6").fetchone()[0])' $S/store.sqlite)
text6=$($PY -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select text from chunks where id=6").fetchone()[0], end="")' $S/store.sqlite)
"$HERD" rag delete --store $S --doc "$doc" || die "delete"
"$HERD" rag query --store $S -q "$text6" -k 50 --json | $PY -c 'import json,sys; d=int(sys.argv[1]); h=json.load(sys.stdin); assert all(x["doc_id"] != d for x in h)' "$doc" ||
    die "a deleted document's chunk was returned"
[ "$($PY -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from chunks where doc_id=?", (int(sys.argv[2]),)).fetchone()[0])' $S/store.sqlite $doc)" = 0 ] ||
    die "chunks of a deleted document remain"
"$HERD" rag delete --store $S --doc "$doc" 2>&1 | grep -q "no document" || die "deleting twice not refused"
echo "  delete: document $doc and its chunks are gone"

# kill -9 in the middle of a document's transaction
HERD_RAG_TEST_PAUSE_MS=100 "$HERD" rag index --store $S --chunk 64 "$TMP/big.md" >/dev/null 2>&1 &
pid=$!
sleep 3
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
$PY - $S/store.sqlite <<'PYEOF' || die "store inconsistent after kill -9"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
for did, src, n in db.execute("select id, source, n_chunks from documents"):
    have = db.execute("select count(*) from chunks where doc_id=?", (did,)).fetchone()[0]
    assert have == n, f"document {did} ({src}) has {have} of {n} chunks"
assert not db.execute("select 1 from documents where source like '%big.md'").fetchone(), "the killed file is in the store"
print("  kill -9 during ingestion: integrity ok, every document complete, the killed file absent")
PYEOF
"$HERD" rag index --store $S --chunk 64 "$TMP/big.md" >/dev/null || die "index after the crash"
$PY -c 'import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); n=db.execute("select n_chunks from documents where source like ?",("%big.md",)).fetchone()[0]; assert n > 20 and n == db.execute("select count(*) from chunks k join documents d on k.doc_id=d.id where d.source like ?",("%big.md",)).fetchone()[0]' $S/store.sqlite ||
    die "big.md incomplete after re-indexing"

# bad input
expect_err() { # PATTERN FILE
    out=$("$HERD" rag index --store $S "$2" 2>&1) && die "indexing $2 succeeded"
    echo "$out" | grep -q "$1" || die "indexing $2: wanted '$1', got: $out"
}
echo x >"$TMP/a.docx"
expect_err "unsupported file type" "$TMP/a.docx"
expect_err "cannot open" "$TMP/missing.txt"
expect_err "has no text" "$TMP/empty.txt"
if ! command -v pdftotext >/dev/null; then
    printf '%%PDF-1.4\n' >"$TMP/a.pdf"
    expect_err "pdftotext is not installed" "$TMP/a.pdf"
fi
"$HERD" rag query --store $TMP/none -q x 2>&1 | grep -q "need -m MODEL" || die "a store without a model not refused"
# herd chat --store: the retrieved chunk goes into the prompt with its source and the request to cite
echo '["See [1]."]' >"$TMP/script.json"
"$HERD" chat -m "$m" --store $S -p "Fish and chips, the quick brown fox" --rag-k 2 --test-script "$TMP/script.json" \
    --dump-prompt "$TMP/prompt.txt" --no-stats >/dev/null || die "chat --store"
grep -q "^\[1\] (source: $TMP/p.html, tokens 0-" "$TMP/prompt.txt" && grep -q "The quick brown fox jumps over the lazy dog." "$TMP/prompt.txt" &&
    grep -q "Cite the documents you use" "$TMP/prompt.txt" && grep -q "Question: Fish and chips, the quick brown fox" "$TMP/prompt.txt" ||
    die "chat --store prompt lacks the retrieved chunk: $(cat "$TMP/prompt.txt")"
echo "  chat --store: the top chunk and its source are in the prompt"
echo "vector store: top hits, brute force, filters, delete, crash safety and bad input all ok"
