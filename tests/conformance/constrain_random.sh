#!/bin/bash
# Constrained decoding on a random-weight model with the real Llama 3 vocabulary: 100 seeds x 5
# schemas (nested objects, arrays with minItems/maxItems, enums/const/null, anyOf + $ref, strings
# with escapes and extra keys), sampled at temperature 1.3 with no filters (every allowed token has a
# chance) -> every output is exactly one JSON document (Python's json, no duplicate keys, valid
# UTF-8) that validates against its schema (a small validator below), ended by the model's end
# token. Plus: --json-object, -n cutting a document short (stop_reason "length"), bad schemas.
. tests/lib.sh
need_ref
command -v python3 >/dev/null || skip "python3 is not installed"

M=$TMP/m.gguf
"$HERD" synth --vocab "$VOCAB31" -o "$M" --n-embd 64 --n-head 4 --n-head-kv 2 --n-layer 1 --n-ff 128 \
    --type f16 --ctx 2048 --seed 3 || die "synth"

cat >"$TMP/s1.json" <<'EOF'
{"type":"object","properties":{"id":{"type":"integer"},"user":{"type":"object","properties":{"name":{"type":"string","maxLength":16},"email":{"type":"string","minLength":3,"maxLength":24},"age":{"type":"integer"}},"required":["name"],"additionalProperties":false},"active":{"type":"boolean"}},"required":["id","user","active"],"additionalProperties":false}
EOF
cat >"$TMP/s2.json" <<'EOF'
{"type":"object","properties":{"scores":{"type":"array","items":{"type":"number"},"minItems":2,"maxItems":5},"matrix":{"type":"array","items":{"type":"array","items":{"type":"integer"},"maxItems":3},"minItems":1,"maxItems":3},"empty":{"type":"array","maxItems":0}},"required":["scores","matrix"],"additionalProperties":false}
EOF
cat >"$TMP/s3.json" <<'EOF'
{"type":"object","properties":{"color":{"enum":["red","green","blue","dark \"navy\""]},"size":{"enum":[1,2.5,3,null,{"k":[true]}]},"kind":{"const":"widget"},"note":{"type":["string","null"],"maxLength":10},"n":{"type":["integer","boolean"]}},"required":["color","size","kind","note"],"additionalProperties":false}
EOF
cat >"$TMP/s4.json" <<'EOF'
{"$defs":{"pt":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}},"required":["x","y"],"additionalProperties":false}},"type":"object","properties":{"shape":{"anyOf":[{"$ref":"#/$defs/pt"},{"type":"array","items":{"$ref":"#/$defs/pt"},"minItems":1,"maxItems":3},{"type":"string","maxLength":8}]},"label":{"oneOf":[{"type":"null"},{"type":"string","minLength":1,"maxLength":5}]}},"required":["shape","label"],"additionalProperties":false}
EOF
cat >"$TMP/s5.json" <<'EOF'
{"type":"object","properties":{"text":{"type":"string","minLength":3,"maxLength":30},"tags":{"type":"array","items":{"type":"string","maxLength":6},"maxItems":4},"a":{"type":"null"}},"required":["text","tags"],"additionalProperties":false,"maxProperties_is_not_used":null}
EOF
# s5 carries an unknown keyword on purpose: it must be refused; the test uses s5 without it
"$HERD" run -m "$M" -p x --json-schema "$TMP/s5.json" -n 5 >"$TMP/err" 2>&1 && die "an unknown keyword was accepted"
grep -q "maxProperties_is_not_used" "$TMP/err" || die "the error does not name the keyword: $(cat "$TMP/err")"
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); del s['maxProperties_is_not_used']; json.dump(s,open(sys.argv[1],'w'))" "$TMP/s5.json"

# generate through herd serve (one process: the vocabulary trie is built once), two slots
"$HERD" serve -m "$M" --port 0 --parallel 2 -c 4096 >"$TMP/port" 2>"$TMP/serve.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null; rm -rf "$TMP"' EXIT
for i in $(seq 1 600); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(head -1 "$TMP/port")
[ -n "$PORT" ] || die "herd serve did not start: $(cat "$TMP/serve.log")"

python3 - "$TMP" "$PORT" <<'EOF' || die "some outputs are not valid"
import json, sys, http.client, threading
tmp, port = sys.argv[1], int(sys.argv[2])

def post(body):
    for attempt in range(50):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            c.close()
            return r.status, json.loads(data)
        except ConnectionRefusedError:
            import time; time.sleep(0.2)
    raise RuntimeError("server unreachable")

schemas = {s: json.load(open(f"{tmp}/s{s}.json")) for s in range(1, 6)}
jobs = [(s, seed) for s in range(1, 6) for seed in range(1, 101)]
results = {}
def worker(k):
    for s, seed in jobs[k::2]:
        results[(s, seed)] = post({"prompt": "Reply in JSON.", "max_tokens": 1000, "temperature": 1.3, "seed": seed,
                                   "response_format": {"type": "json_schema", "json_schema": {"name": f"s{s}", "schema": schemas[s]}}})
ts = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
for t in ts: t.start()
for t in ts: t.join()

def no_dups(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)

def resolve(root, ref):
    node = root
    for part in ref.lstrip("#").split("/")[1:]:
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node

def is_type(v, t):
    return {"object": lambda: isinstance(v, dict), "array": lambda: isinstance(v, list),
            "string": lambda: isinstance(v, str), "boolean": lambda: isinstance(v, bool), "null": lambda: v is None,
            "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda: isinstance(v, (int, float)) and not isinstance(v, bool)}[t]()

def ok(s, v, root):
    if s is True or s == {}: return True
    if "$ref" in s: return ok(resolve(root, s["$ref"]), v, root)
    if "anyOf" in s: return any(ok(x, v, root) for x in s["anyOf"])
    if "oneOf" in s: return sum(ok(x, v, root) for x in s["oneOf"]) == 1
    if "const" in s and not (v == s["const"] and type(v) == type(s["const"])): return False
    if "enum" in s and not any(v == e and type(v) == type(e) for e in s["enum"]): return False
    if "type" in s:
        ts = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(is_type(v, t) for t in ts): return False
    if isinstance(v, str):
        if len(v) < s.get("minLength", 0) or len(v) > s.get("maxLength", 1 << 60): return False
    if isinstance(v, list):
        if len(v) < s.get("minItems", 0) or len(v) > s.get("maxItems", 1 << 60): return False
        if "items" in s and not all(ok(s["items"], x, root) for x in v): return False
    if isinstance(v, dict):
        props = s.get("properties", {})
        if any(k not in v for k in s.get("required", [])): return False
        for k, x in v.items():
            if k in props:
                if not ok(props[k], x, root): return False
            else:
                ap = s.get("additionalProperties", True)
                if ap is False or (isinstance(ap, dict) and not ok(ap, x, root)): return False
    return True

bad, n, lengths = 0, 0, []
for s in range(1, 6):
    schema = schemas[s]
    for seed in range(1, 101):
        n += 1
        status, o = results[(s, seed)]
        text = o["choices"][0]["text"] if status == 200 else str(o)
        lengths.append(o["usage"]["completion_tokens"] if status == 200 else 0)
        try:
            if status != 200: raise ValueError(f"HTTP {status}")
            if o["choices"][0]["finish_reason"] != "stop": raise ValueError("finish_reason " + o["choices"][0]["finish_reason"])
            v = json.loads(text, object_pairs_hook=no_dups)
            if text != text.strip(): raise ValueError("whitespace around the document")
            if not ok(schema, v, schema): raise ValueError("does not validate")
        except Exception as e:
            bad += 1
            if bad <= 10: print(f"schema {s} seed {seed}: {e}: {text[:300]!r}")
print(f"{n - bad}/{n} outputs valid; tokens per document: mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)}")
sys.exit(1 if bad else 0)
EOF

# any JSON object; a document cut by -n ends with stop_reason "length"
"$HERD" run -m "$M" -p x --json-object --temp 0 -n 200 --json >"$TMP/o" || die "--json-object"
python3 -c "import json,sys; o=json.load(open(sys.argv[1])); assert o['stop_reason']=='length' or isinstance(json.loads(o['text']),dict), o" "$TMP/o" || die "--json-object output: $(cat "$TMP/o")"
"$HERD" run -m "$M" -p x --json-schema "$TMP/s1.json" --temp 1 -n 3 --seed 1 --json >"$TMP/o" || die "-n 3"
grep -q '"stop_reason":"length"' "$TMP/o" || die "a cut document must say length: $(cat "$TMP/o")"

# bad schemas: one clear line, non-zero exit
echo '{"type":"string","pattern":"a+"}' >"$TMP/bad1.json"
echo '{"type":' >"$TMP/bad2.json"
for f in bad1 bad2; do
    "$HERD" run -m "$M" -p x --json-schema "$TMP/$f.json" -n 5 >"$TMP/err" 2>&1 && die "$f accepted"
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || die "$f: not one line: $(cat "$TMP/err")"
done
grep -q "'pattern'" <("$HERD" run -m "$M" -p x --json-schema "$TMP/bad1.json" 2>&1) || die "the error does not name 'pattern'"
"$HERD" run -m "$M" -p x --json-schema "$TMP/nope.json" >/dev/null 2>&1 && die "a missing schema file was accepted"
"$HERD" run -m "$M" -p x --json-schema "$TMP/s1.json" --json-object >/dev/null 2>&1 && die "both --json-schema and --json-object"
echo "constrain_random: ok"
