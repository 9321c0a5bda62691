// bench/classify's onnxruntime side (npm onnxruntime-node, CPU): the ONNX export of bench/classify_onnx.py,
// one window of T ids per run, intra-op THREADS threads, inter-op 1, sequential execution, all graph
// optimizations; one warm-up then N timed runs. Prints the warm-up's logits (checked against PyTorch's by
// bench/classify) and one rate per window.
//   ORT_DIR=build/ort VOCAB=V node bench/classify_ort.mjs MODEL.onnx T N THREADS   -> {"logits": [...], "windows_per_s": [...]}
import {createRequire} from "node:module";
// onnxruntime-node is installed at bench time under ORT_DIR (build/ort), never committed
const ort = createRequire(process.env.ORT_DIR + "/")("onnxruntime-node");
const [modelPath, tArg, nArg, threadsArg] = process.argv.slice(2);
const T = Number(tArg), n = Number(nArg), threads = Number(threadsArg);
const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all"});
// the same ids as bench/classify_torch.py and classify_onnx.py: [CLS] 510 pieces [SEP] (vocabulary of V >= 8)
const V = Number(process.env.VOCAB);
const ids = BigInt64Array.from([1, ...Array.from({length: T - 2}, (_, i) => (7 * i) % (V - 4) + 4), 2], BigInt);
const feeds = {ids: new ort.Tensor("int64", ids, [T])};
const logits = Array.from((await session.run(feeds)).logits.data);
const rates = [];
for (let r = 0; r < n; r++) {
    const t0 = performance.now();
    await session.run(feeds);
    rates.push(1000 / (performance.now() - t0));
}
console.log(JSON.stringify({logits, windows_per_s: rates}));
