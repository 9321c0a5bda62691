// Constrained decoding through herd serve with the OpenAI SDK, on a random-weight model (so only
// the constraint makes its output valid): response_format json_object / json_schema and tool_choice
// "required" / a named function, streamed and not; a document cut by max_tokens says "length";
// bad schemas are 400s naming what is wrong.
import OpenAI from "openai";
import {startServer, testModel, check, done} from "./lib.mjs";

const model = testModel();
const srv = await startServer(["-m", model, "--parallel", "2", "--alias", "tiny"]);
const client = new OpenAI({baseURL: srv.base + "/v1", apiKey: "x", maxRetries: 0});
const user = {role: "user", content: "Describe a person as JSON."};

// a small validator for the keywords used here
function valid(s, v) {
    if (s.enum && !s.enum.some(e => JSON.stringify(e) === JSON.stringify(v))) return false;
    if ("const" in s && JSON.stringify(s.const) !== JSON.stringify(v)) return false;
    if (s.anyOf) return s.anyOf.some(x => valid(x, v));
    const t = s.type, type = v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
    if (t === "integer" && !(typeof v === "number" && Number.isInteger(v))) return false;
    if (t && t !== "integer" && t !== type) return false;
    if (type === "string" && ([...v].length > (s.maxLength ?? Infinity) || [...v].length < (s.minLength ?? 0))) return false;
    if (type === "array") {
        if (v.length > (s.maxItems ?? Infinity) || v.length < (s.minItems ?? 0)) return false;
        if (s.items && !v.every(x => valid(s.items, x))) return false;
    }
    if (type === "object") {
        for (const k of s.required ?? []) if (!(k in v)) return false;
        for (const [k, x] of Object.entries(v)) {
            if (s.properties?.[k]) { if (!valid(s.properties[k], x)) return false; }
            else if (s.additionalProperties === false) return false;
        }
    }
    return true;
}
function parses(text) {
    try { return {ok: true, v: JSON.parse(text)}; } catch { return {ok: false}; }
}

const person = {type: "object", properties: {name: {type: "string", maxLength: 12}, age: {type: "integer"},
    pets: {type: "array", items: {enum: ["cat", "dog", "fish"]}, maxItems: 3}}, required: ["name", "age", "pets"],
    additionalProperties: false};
const weather = {type: "function", function: {name: "get_weather", description: "Current weather in a city.",
    parameters: {type: "object", properties: {city: {type: "string", maxLength: 12}, unit: {enum: ["celsius", "fahrenheit"]}},
        required: ["city", "unit"], additionalProperties: false}}};
const time = {type: "function", function: {name: "get_time", description: "The time in a zone.",
    parameters: {type: "object", properties: {zone: {type: "string", maxLength: 8}}, required: ["zone"], additionalProperties: false}}};
const tools = [weather, time];

try {
    // json_schema, not streamed, several seeds
    for (let seed = 1; seed <= 6; seed++) {
        const r = await client.chat.completions.create({model: "tiny", messages: [user], seed, max_tokens: 400,
            response_format: {type: "json_schema", json_schema: {name: "person", schema: person, strict: true}}});
        const c = r.choices[0], p = parses(c.message.content);
        check(c.finish_reason === "stop" && p.ok && valid(person, p.v), `json_schema seed ${seed}: valid`, c.message.content);
    }
    // json_schema streamed
    const s1 = await client.chat.completions.create({model: "tiny", messages: [user], seed: 7, max_tokens: 400, stream: true,
        response_format: {type: "json_schema", json_schema: {name: "person", schema: person}}});
    let text1 = "", finish1 = null;
    for await (const ch of s1) {
        text1 += ch.choices[0]?.delta?.content ?? "";
        finish1 = ch.choices[0]?.finish_reason ?? finish1;
    }
    const p1 = parses(text1);
    check(finish1 === "stop" && p1.ok && valid(person, p1.v), "json_schema streamed: valid", text1);

    // json_object: an object (or cut by max_tokens: then "length"), streamed and not
    for (let seed = 1; seed <= 3; seed++) {
        const r = await client.chat.completions.create({model: "tiny", messages: [user], seed, max_tokens: 300,
            response_format: {type: "json_object"}});
        const c = r.choices[0], p = parses(c.message.content);
        check(c.message.content.startsWith("{") && (c.finish_reason === "length" ||
            (c.finish_reason === "stop" && p.ok && typeof p.v === "object" && !Array.isArray(p.v))),
            `json_object seed ${seed}: ${c.finish_reason}`, c.message.content);
    }
    const s2 = await client.chat.completions.create({model: "tiny", messages: [user], seed: 4, max_tokens: 300, stream: true,
        response_format: {type: "json_object"}});
    let text2 = "", finish2 = null;
    for await (const ch of s2) {
        text2 += ch.choices[0]?.delta?.content ?? "";
        finish2 = ch.choices[0]?.finish_reason ?? finish2;
    }
    check(text2.startsWith("{") && (finish2 === "length" || (finish2 === "stop" && parses(text2).ok)),
        `json_object streamed: ${finish2}`, text2);

    // cut short by max_tokens: finish_reason length
    const r3 = await client.chat.completions.create({model: "tiny", messages: [user], seed: 1, max_tokens: 3,
        response_format: {type: "json_schema", json_schema: {name: "person", schema: person}}});
    check(r3.choices[0].finish_reason === "length" && !parses(r3.choices[0].message.content).ok,
        "a document cut by max_tokens: finish_reason length", JSON.stringify(r3.choices[0]));

    // tool_choice names a function: a call of it, with valid arguments
    for (let seed = 1; seed <= 4; seed++) {
        const r = await client.chat.completions.create({model: "tiny", messages: [user], tools, seed, max_tokens: 300,
            tool_choice: {type: "function", function: {name: "get_weather"}}});
        const c = r.choices[0], call = c.message.tool_calls?.[0];
        const args = call ? parses(call.function.arguments) : {ok: false};
        check(c.finish_reason === "tool_calls" && c.message.content === null && call?.function.name === "get_weather" &&
            args.ok && valid(weather.function.parameters, args.v), `named tool_choice seed ${seed}`, JSON.stringify(c));
    }
    // tool_choice required, streamed: a call of one of the tools
    const names = new Set();
    for (let seed = 1; seed <= 4; seed++) {
        const s = await client.chat.completions.create({model: "tiny", messages: [user], tools, seed, max_tokens: 300,
            tool_choice: "required", stream: true});
        let content = "", name = "", args = "", finish = null;
        for await (const ch of s) {
            const d = ch.choices[0]?.delta;
            if (d?.content) content += d.content;
            for (const t of d?.tool_calls ?? []) {
                if (t.function?.name) name += t.function.name;
                if (t.function?.arguments) args += t.function.arguments;
            }
            finish = ch.choices[0]?.finish_reason ?? finish;
        }
        const tool = tools.find(t => t.function.name === name), a = parses(args);
        if (tool) names.add(name);
        check(finish === "tool_calls" && content === "" && tool && a.ok && valid(tool.function.parameters, a.v),
            `required tool_choice streamed seed ${seed}`, JSON.stringify([content, name, args, finish]));
    }
    const r4 = await client.chat.completions.create({model: "tiny", messages: [user], tools, seed: 9, max_tokens: 300,
        tool_choice: "required"});
    const call4 = r4.choices[0].message.tool_calls?.[0];
    check(r4.choices[0].finish_reason === "tool_calls" && tools.some(t => t.function.name === call4?.function.name) &&
        parses(call4.function.arguments).ok, "required tool_choice, not streamed", JSON.stringify(r4.choices[0]));

    // errors: 400 naming the problem
    const bad = [
        [{response_format: {type: "json_schema", json_schema: {name: "x", schema: {type: "string", pattern: "a+"}}}},
            "response_format", "pattern"],
        [{response_format: {type: "json_schema", json_schema: {name: "x", schema: {type: "strin"}}}}, "response_format", "strin"],
        [{response_format: {type: "yaml"}}, "response_format", "type"],
        [{tools, tool_choice: {type: "function", function: {name: "nope"}}}, "tool_choice", "nope"],
        [{tool_choice: "required"}, "tool_choice", "tools"],
        [{tools: [{type: "function", function: {name: "f", parameters: {type: "object", properties: {a: {format: "date"}}}}}],
            tool_choice: "required"}, "tools", "format"],
        [{tools, tool_choice: "required", response_format: {type: "json_object"}}, "response_format", "combined"],
    ];
    for (const [extra, param, word] of bad) {
        try {
            await client.chat.completions.create({model: "tiny", messages: [user], max_tokens: 5, ...extra});
            check(false, `400 for ${JSON.stringify(extra).slice(0, 80)}`);
        } catch (e) {
            check(e.status === 400 && e.param === param && e.message.includes(word),
                `400 ${param} '${word}'`, `${e.status} ${e.param} ${e.message}`);
        }
    }
} catch (e) {
    check(false, "no exception", e.stack);
}
check((await srv.stop()) === 0, "SIGTERM: clean exit");
done("constrain_client");
