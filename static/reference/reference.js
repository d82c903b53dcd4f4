// Renders /api/v1/openapi.json as a readable page: one section per route, each body as a
// table of its fields, nested objects indented. No dependencies, no build step.

const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
};

let schemas = {};

const refName = (s) => s && s.$ref ? s.$ref.replace("#/components/schemas/", "") : null;
const resolve = (s, seen = new Set()) => {
  const name = refName(s);
  if (!name || seen.has(name)) return s || {};
  seen.add(name);
  return resolve(schemas[name], seen);
};

// A short type label: "string", "integer ≥ 0", "[Variant]", "Goal | null", "enum a, b".
function typeOf(s) {
  const name = refName(s);
  if (name) return name;
  if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map(typeOf).join(" | ");
  if (s.allOf) return s.allOf.map(typeOf).join(" & ");
  if (s.enum) return "one of " + s.enum.map((v) => JSON.stringify(v)).join(", ");
  const t = Array.isArray(s.type) ? s.type.join(" | ") : s.type;
  if (t === "array" || (Array.isArray(s.type) && s.type.includes("array"))) {
    return "[" + typeOf(s.items || {}) + "]" + (Array.isArray(s.type) && s.type.includes("null") ? " | null" : "");
  }
  if (!t) return "any";
  return t + (s.format ? ` (${s.format})` : "") + (s.minimum !== undefined ? ` ≥ ${s.minimum}` : "");
}

// Every field of an object schema, through allOf and refs: [name, schema, required].
function fields(schema, seen = new Set()) {
  const s = resolve(schema, new Set(seen));
  const out = [];
  for (const part of s.allOf || []) out.push(...fields(part, seen));
  const req = new Set(s.required || []);
  for (const [k, v] of Object.entries(s.properties || {})) out.push([k, v, req.has(k)]);
  return out;
}

// The object schema a field leads to, for nesting (through arrays, nullables and refs).
function inner(s) {
  if (s.items) return inner(s.items);
  const alts = (s.oneOf || s.anyOf || []).filter((a) => a.type !== "null");
  if (alts.length === 1) return inner(alts[0]);
  const r = resolve(s);
  return (r.properties || r.allOf) ? r : null;
}

function table(schema, depth = 0, seen = new Set()) {
  const name = refName(schema);
  if (name) {
    if (seen.has(name)) return el("p", {}, `(${name}, as above)`);
    seen = new Set(seen).add(name);
  }
  const r = resolve(schema);
  if (r.oneOf && !r.properties) {
    const wrap = el("div");
    wrap.append(el("p", {}, "One of:"));
    for (const alt of r.oneOf) wrap.append(el("div", { class: "nested" }, table(alt, depth + 1, seen)));
    return wrap;
  }
  const rows = fields(schema);
  if (!rows.length) return el("p", {}, typeOf(schema));
  const t = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, ""), el("th", {}, "")));
  for (const [k, v, req] of rows) {
    t.append(el("tr", {},
      el("td", { class: "name" }, el("code", {}, k)),
      el("td", { class: "type" }, typeOf(v)),
      el("td", { class: "req" }, req ? "required" : ""),
      el("td", { class: "desc" }, v.description || resolve(v).description || "")));
    const sub = inner(v);
    if (sub && depth < 4) {
      const target = v.items || (v.oneOf || []).find((a) => a.$ref) || v;
      t.append(el("tr", {}, el("td", { colspan: "4" }, el("div", { class: "nested" }, table(target, depth + 1, seen)))));
    }
  }
  return t;
}

async function main() {
  const main = document.getElementById("routes");
  const toc = document.getElementById("toc");
  let doc;
  try {
    const res = await fetch("/api/v1/openapi.json");
    doc = await res.json();
  } catch (e) {
    main.replaceChildren(el("p", {}, "Could not load the API document: " + e));
    return;
  }
  schemas = (doc.components && doc.components.schemas) || {};
  main.replaceChildren();
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const id = (method + path).replace(/[^a-z0-9]+/gi, "-");
      toc.append(el("a", { href: "#" + id }, `${method.toUpperCase()} ${path}`));
      const sec = el("section", { class: "route", id });
      const h = el("h2", {}, el("span", { class: "method " + method }, method), el("span", { class: "path" }, path));
      if (op.security) h.append(el("span", { class: "auth" }, "needs a token"));
      sec.append(h, el("p", { class: "summary" }, op.summary || ""));
      const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
      if (body) sec.append(el("h3", {}, "Request body" + (op.requestBody.required ? "" : " (optional)")), table(body.schema));
      for (const [code, r] of Object.entries(op.responses)) {
        if (code === "default") continue;
        const content = r.content || {};
        const json = content["application/json"];
        sec.append(el("h3", {}, `Answer ${code}`));
        if (json) sec.append(table(json.schema));
        else if (Object.keys(content).length) sec.append(el("p", {}, Object.keys(content).join(", ")));
        else sec.append(el("p", {}, "No body."));
      }
      main.append(sec);
    }
  }
}

main();
