// The benchmark's Express reference: what Sinch's Node samples do, on their stack.
//
// Express 5 and Node's crypto: for every POST to the v1 callback path it checks the
// "Application <key>:<signature>" Authorization, for every POST to the v2 webhook path the
// "service <serviceId>:<signature>" one (the same HMAC-SHA256 over method, Content-MD5,
// Content-Type, x-timestamp and path, compared in constant time, and the same x-timestamp
// window as callgate), parses the body with JSON.parse, and sends the fixed answer of its
// "event" (the bytes bench/reference_server.py answers, read from ANSWERS_FILE).  Nothing else.
//
//   SINCH_APPLICATION_KEY=... SINCH_APPLICATION_SECRET=... SINCH_SERVICE_ID=... SINCH_SERVICE_SECRET=... \
//   PORT=8082 ANSWERS_FILE=answers.json [CALLBACK_PATH=/sinch/callback] [WEBHOOK_PATH=/sinch/webhook] \
//   [WINDOW_SECONDS=600] node server.js
//
// bench/run.py writes ANSWERS_FILE (reference_server.py --answers), runs `npm install` here when
// node_modules/ is missing, starts this pinned to one core and stops it with SIGTERM.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const express = require("express");

const env = process.env;
const host = env.HOST || "127.0.0.1";
const port = Number(env.PORT);
const windowMs = Number(env.WINDOW_SECONDS || 600) * 1000;
const answers = JSON.parse(fs.readFileSync(env.ANSWERS_FILE, "utf8"));

class SignatureError extends Error {
  constructor(reason) {
    super(reason);
    this.reason = reason;
  }
}

// A verifier for one scheme ("Application" or "service") and one key with its Base64 secret.
function verifier(scheme, key, secretB64) {
  const secret = Buffer.from(secretB64, "base64");
  const prefix = scheme.toLowerCase() + " ";
  return function verify(req, path, body) {
    const header = req.get("authorization");
    if (!header) throw new SignatureError("missing_authorization");
    if (header.slice(0, prefix.length).toLowerCase() !== prefix) throw new SignatureError("unsupported_scheme");
    const credentials = header.slice(prefix.length);
    const colon = credentials.indexOf(":");
    if (colon <= 0) throw new SignatureError("malformed_authorization");
    if (credentials.slice(0, colon) !== key) throw new SignatureError("unknown_key");
    const timestamp = req.get("x-timestamp");
    if (!timestamp) throw new SignatureError("missing_timestamp");
    const md5 = body.length ? crypto.createHash("md5").update(body).digest("base64") : "";
    const toSign = `POST\n${md5}\n${req.get("content-type") || ""}\nx-timestamp:${timestamp}\n${path}`;
    const expected = crypto.createHmac("sha256", secret).update(toSign, "utf8").digest();
    const given = Buffer.from(credentials.slice(colon + 1), "base64");
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
      throw new SignatureError("bad_signature");
    }
    const when = Date.parse(timestamp);
    if (Number.isNaN(when)) throw new SignatureError("invalid_timestamp");
    if (Math.abs(Date.now() - when) > windowMs) throw new SignatureError("stale_timestamp");
  };
}

function route(app, path, verify, byEvent, other) {
  app.post(path, express.raw({ type: () => true, limit: "100kb" }), (req, res) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    try {
      verify(req, path, body);
    } catch (err) {
      if (!(err instanceof SignatureError)) throw err;
      res.status(401).json({ error: "signature", reason: err.reason });
      return;
    }
    let event;
    try {
      event = JSON.parse(body).event;
    } catch {
      res.status(400).json({ error: "invalid_json" });
      return;
    }
    res.type("application/json").send(byEvent[event] ?? other);
  });
}

const app = express();
app.disable("x-powered-by");
app.disable("etag");
route(app, env.CALLBACK_PATH || "/sinch/callback",
  verifier("Application", env.SINCH_APPLICATION_KEY, env.SINCH_APPLICATION_SECRET), answers.v1, answers.other.v1);
route(app, env.WEBHOOK_PATH || "/sinch/webhook",
  verifier("service", env.SINCH_SERVICE_ID, env.SINCH_SERVICE_SECRET), answers.v2, answers.other.v2);

const server = app.listen(port, host);
server.keepAliveTimeout = 75000;
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
