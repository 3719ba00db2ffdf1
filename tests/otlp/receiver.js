#!/usr/bin/env node
// OTLP oracle for the tests: decodes with the official codecs — the protobufjs code
// generated from opentelemetry-proto that @opentelemetry/otlp-transformer ships —
// never with odigos-trace's own encoder.
//
//   receiver.js serve --out FILE [--port N] [--script JSON]
//       An OTLP/HTTP receiver on 127.0.0.1 (POST /v1/traces, protobuf or JSON, gzip
//       or not). Prints "listening on PORT" once it listens. Each request is decoded
//       and appended to FILE as one JSON line: {t (ms since the epoch), n, path,
//       contentType, contentEncoding, bytes, status (what was answered), error
//       (decoding error or null), request (ExportTraceServiceRequest, ids as hex,
//       64-bit integers as strings)}.
//       --script: the answers, e.g. '[{"status":503,"retryAfter":"2"},{"status":200}]'
//       ("retryAfterDateIn":N: Retry-After as an HTTP-date N s ahead; "body": the
//       body); the last one repeats. Default: 200 always. A request that fails to decode is
//       answered 400.
//   receiver.js validate FILE
//       FILE holds OTLP/JSON lines (TracesData): each is checked strictly (every
//       field name must be one of the official message's fields, ids lowercase hex
//       of the right length, 64-bit integers decimal strings, enums integers), then
//       converted with the official fromObject, verified, encoded and decoded again.
//       Prints each decoded line (as above) to stdout; exit 1 on the first error.
//   receiver.js decode-proto FILE
//       FILE holds one protobuf ExportTraceServiceRequest: decoded strictly (the
//       re-encoding must give the same bytes: no unknown fields) and printed.
//
// The codec is found in $ODIGOS_OTLP_NODE_DIR (default /var/cache/odigos-trace/otlp-node),
// installed there by scripts/install-otlp-validator.sh.
"use strict";
const fs = require("fs");
const http = require("http");
const path = require("path");
const zlib = require("zlib");

const NODE_DIR = process.env.ODIGOS_OTLP_NODE_DIR || "/var/cache/odigos-trace/otlp-node";
const CODEC = path.join(NODE_DIR, "node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js");

function loadCodec() {
  try {
    return require(CODEC).opentelemetry.proto;
  } catch (e) {
    console.error(`receiver.js: cannot load the official OTLP codec ${CODEC}: ${e.message}\n` +
                  "hint: run scripts/install-otlp-validator.sh (needs the npm registry)");
    process.exit(3);
  }
}
const proto = loadCodec();
const ExportReq = proto.collector.trace.v1.ExportTraceServiceRequest;
const TracesData = proto.trace.v1.TracesData;

// ---- the official message types' fields, read from the generated code ----------
// Field names: the generated class's prototype properties; which fields are
// messages (and of which type): the generated fromObject's "$root.X.fromObject".
function typeByName(full) {
  let t = { opentelemetry: { proto } };
  for (const part of full.split(".")) t = t[part];
  return t;
}
const schemaCache = new Map();
function schemaOf(type) {
  if (schemaCache.has(type)) return schemaCache.get(type);
  const fields = new Set(Object.keys(type.prototype).filter((k) => k !== "toJSON"));
  const messages = {};
  const src = type.fromObject.toString();
  const re = /message\.(\w+)(?:\[\w+\])?\s*=\s*\$root\.([\w.]+)\.fromObject/g;
  let m;
  while ((m = re.exec(src))) messages[m[1]] = typeByName(m[2]);
  const s = { fields, messages };
  schemaCache.set(type, s);
  return s;
}

const HEX_IDS = { traceId: 32, spanId: 16, parentSpanId: 16 };
const INT64_STRINGS = new Set(["startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "intValue"]);
const ENUMS = new Set(["kind", "code"]);

// Strict OTLP/JSON check of obj as `type`; converts hex ids to bytes in place.
function checkJson(obj, type, where, errors) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    errors.push(`${where}: expected an object`);
    return;
  }
  const { fields, messages } = schemaOf(type);
  for (const [k, v] of Object.entries(obj)) {
    const at = `${where}.${k}`;
    if (!fields.has(k)) {
      errors.push(`${at}: not a field of ${type.name || "the message"} (fields: ${[...fields].join(", ")})`);
      continue;
    }
    if (k in HEX_IDS) {
      if (typeof v !== "string" || !/^[0-9a-f]*$/.test(v) || v.length !== HEX_IDS[k]) {
        errors.push(`${at}: expected ${HEX_IDS[k]} lowercase hex digits, got ${JSON.stringify(v)}`);
        continue;
      }
      obj[k] = Buffer.from(v, "hex");
    } else if (INT64_STRINGS.has(k)) {
      if (typeof v !== "string" || !/^-?[0-9]+$/.test(v)) errors.push(`${at}: expected a decimal string, got ${JSON.stringify(v)}`);
    } else if (ENUMS.has(k) && typeof v !== "number") {
      errors.push(`${at}: expected an integer enum value, got ${JSON.stringify(v)}`);
    }
    if (k in messages) {
      if (Array.isArray(v)) v.forEach((x, i) => checkJson(x, messages[k], `${at}[${i}]`, errors));
      else checkJson(v, messages[k], at, errors);
    }
  }
}

// A decoded message as plain JSON: ids as hex, 64-bit integers as strings.
function toPlain(type, msg) {
  const o = type.toObject(msg, { longs: String, enums: Number, bytes: String });
  (function hexify(x) {
    if (Array.isArray(x)) return x.forEach(hexify);
    if (x && typeof x === "object")
      for (const [k, v] of Object.entries(x)) {
        if ((k in HEX_IDS) && typeof v === "string") x[k] = Buffer.from(v, "base64").toString("hex");
        else hexify(v);
      }
  })(o);
  return o;
}

function decodeProto(buf) {
  const msg = ExportReq.decode(buf);
  const err = ExportReq.verify(msg);
  if (err) throw new Error(`verify: ${err}`);
  const again = Buffer.from(ExportReq.encode(msg).finish());
  if (!again.equals(buf))
    throw new Error(`re-encoding gives ${again.length} bytes, not the ${buf.length} received: unknown or non-canonical fields`);
  return toPlain(ExportReq, msg);
}

function decodeJson(text, type) {
  const obj = JSON.parse(text);
  const errors = [];
  checkJson(obj, type, type === ExportReq ? "ExportTraceServiceRequest" : "TracesData", errors);
  if (errors.length) throw new Error("OTLP/JSON check failed:\n  " + errors.slice(0, 20).join("\n  "));
  const msg = type.fromObject(obj);
  const err = type.verify(msg);
  if (err) throw new Error(`verify: ${err}`);
  const round = type.decode(type.encode(msg).finish());
  return toPlain(type, round);
}

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

function serve() {
  const out = arg("--out");
  if (!out) {
    console.error("receiver.js serve: --out FILE is required");
    process.exit(2);
  }
  const script = JSON.parse(arg("--script", '[{"status":200}]'));
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      // The wall clock, as the Retry-After HTTP-date is (performance.timeOrigin + now()
      // drifts from Date.now(): 2 s apart here once, failing the date check).
      const t = Date.now();
      const raw = Buffer.concat(chunks);
      const ct = req.headers["content-type"] || "";
      const ce = req.headers["content-encoding"] || "";
      const rec = { t, n, path: req.url, method: req.method, contentType: ct, contentEncoding: ce, bytes: raw.length,
                    userAgent: req.headers["user-agent"] || "", headers: req.headers, status: 0, error: null, request: null };
      const answer = script[Math.min(n, script.length - 1)];
      n++;
      try {
        const body = ce === "gzip" ? zlib.gunzipSync(raw) : raw;
        if (ce && ce !== "gzip") throw new Error(`unexpected Content-Encoding ${ce}`);
        if (req.method !== "POST") throw new Error(`method ${req.method}`);
        if (ct.startsWith("application/x-protobuf")) rec.request = decodeProto(body);
        else if (ct.startsWith("application/json")) rec.request = decodeJson(body.toString("utf8"), ExportReq);
        else throw new Error(`unexpected Content-Type '${ct}'`);
      } catch (e) {
        rec.error = String(e.message || e);
      }
      const status = rec.error ? 400 : answer.status;
      rec.status = status;
      const headers = {};
      if (answer.retryAfter !== undefined && !rec.error) headers["Retry-After"] = String(answer.retryAfter);
      if (answer.retryAfterDateIn !== undefined && !rec.error) {
        // An HTTP-date at least this many seconds ahead (whole seconds).
        const at = Math.ceil((Date.now() + 1000 * answer.retryAfterDateIn) / 1000) * 1000;
        headers["Retry-After"] = new Date(at).toUTCString();
        rec.retryAfterDate = at;
      }
      let body;
      if (rec.error) body = rec.error + "\n";
      else if (answer.body !== undefined) body = answer.body;
      else if (status === 200) {
        if (ct.startsWith("application/json")) {
          headers["Content-Type"] = "application/json";
          body = "{}";
        } else {
          headers["Content-Type"] = "application/x-protobuf";
          body = Buffer.alloc(0);
        }
      } else body = `scripted ${status}\n`;
      fs.appendFileSync(out, JSON.stringify(rec) + "\n");
      res.writeHead(status, headers);
      res.end(body);
    });
  });
  server.listen(Number(arg("--port", "0")), "127.0.0.1", () => {
    process.stdout.write(`listening on ${server.address().port}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

function validate(file) {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  let count = 0;
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].trim()) continue;
    try {
      process.stdout.write(JSON.stringify(decodeJson(lines[i], TracesData)) + "\n");
      count++;
    } catch (e) {
      console.error(`${file}:${i + 1}: ${e.message}`);
      process.exit(1);
    }
  }
  console.error(`receiver.js: ${count} lines valid`);
}

const mode = process.argv[2];
if (mode === "serve") serve();
else if (mode === "validate") validate(process.argv[3]);
else if (mode === "decode-proto") {
  try {
    process.stdout.write(JSON.stringify(decodeProto(fs.readFileSync(process.argv[3]))) + "\n");
  } catch (e) {
    console.error(`decode-proto: ${e.message}`);
    process.exit(1);
  }
} else {
  console.error("usage: receiver.js serve --out FILE [--port N] [--script JSON] | validate FILE | decode-proto FILE");
  process.exit(2);
}
