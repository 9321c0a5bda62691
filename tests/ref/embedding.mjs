// llama.cpp reference embeddings: node tests/ref/embedding.mjs IDS_JSON MODEL.gguf... [--threads N]
// For each model prints one line: the JSON array llama.cpp computes for the ids, unnormalised, as
// node-llama-cpp's LlamaEmbeddingContext.getEmbeddingFor does it (llama_get_embeddings_seq for a
// pooled model, the last token's row for pooling none) but with an f32 KV cache (the embedding
// context would use f16). The pooling comes from each file's llama.pooling_type
// (tests/ref/gguf_set_u32.py); the ids are used as given (no BOS or EOS added).
import {getLlama} from "node-llama-cpp";

const args = process.argv.slice(2);
const ti = args.indexOf("--threads");
const threads = ti >= 0 ? Number(args.splice(ti, 2)[1]) : 2;
const [idsJson, ...models] = args;
const ids = JSON.parse(idsJson);
const llama = await getLlama({build: "never", gpu: false, logLevel: "error"});
for (const modelPath of models) {
    const model = await llama.loadModel({modelPath});
    const ctx = await model.createContext({contextSize: Math.max(64, ids.length + 8), batchSize: 512, threads,
        flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
        _embeddings: true});
    const seq = ctx.getSequence();
    for await (const t of seq.evaluate(ids, {_noSampling: true})) break; // one step: the prompt's embeddings
    console.log(JSON.stringify(Array.from(ctx._ctx.getEmbedding(ids.length))));
    await ctx.dispose();
    await model.dispose();
}
