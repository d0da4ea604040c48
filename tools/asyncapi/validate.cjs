#!/usr/bin/env node
// Validate AsyncAPI documents with the official parser (@asyncapi/parser, pinned in package-lock.json):
// the AsyncAPI JSON Schema of the document's version (@asyncapi/specs) and the AsyncAPI ruleset (every
// $ref resolves, operations send and receive their channel's messages, ...). The parser checks message
// examples only for AsyncAPI 2, so this script also checks every example's payload and headers against
// its message's (resolved) schemas with Ajv, JSON Schema draft-07 plus formats, as the parser does.
//
//   node tools/asyncapi/validate.cjs docs/asyncapi.yaml [more.yaml ...]
//
// Exit status: 0 valid; 1 an error or a warning (each printed as file:line:column); 2 usage or crash.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');

const SEVERITY = { [DiagnosticSeverity.Error]: 'error', [DiagnosticSeverity.Warning]: 'warning' };

function checkExamples(file, document) {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  let failures = 0;
  for (const message of document.allMessages()) {
    const schemas = { payload: message.payload(), headers: message.headers() };
    message.examples().all().forEach((example, index) => {
      for (const part of ['payload', 'headers']) {
        const value = example[part]();
        if (value === undefined || schemas[part] === undefined) continue;
        const check = ajv.compile(schemas[part].json());
        if (check(value)) continue;
        failures += 1;
        const name = example.name() || `#${index}`;
        for (const e of check.errors) {
          console.error(`${file}: error message-example: message ${message.id()}, example ${name}: `
            + `${part}${e.instancePath} ${e.message}`);
        }
      }
    });
  }
  return failures;
}

async function validate(parser, file) {
  const source = path.resolve(file);
  const { document, diagnostics } = await parser.parse(fs.readFileSync(source, 'utf8'), { source });
  let failures = 0;
  // Information and hints (such as "a newer AsyncAPI version exists") are advice: not shown.
  for (const d of diagnostics.filter((x) => x.severity <= DiagnosticSeverity.Warning)) {
    failures += 1;
    const where = `${file}:${d.range.start.line + 1}:${d.range.start.character + 1}`;
    const at = d.path && d.path.length ? ` (at ${d.path.join('.')})` : '';
    console.error(`${where}: ${SEVERITY[d.severity]} ${d.code}: ${d.message}${at}`);
  }
  if (document !== undefined) failures += checkExamples(file, document);
  return failures;
}

async function main(files) {
  if (files.length === 0) {
    console.error('usage: node tools/asyncapi/validate.cjs FILE...');
    return 2;
  }
  const parser = new Parser();
  let failures = 0;
  for (const file of files) {
    const found = await validate(parser, file);
    failures += found;
    if (found === 0) console.log(`${file}: valid AsyncAPI`);
  }
  return failures ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; },
  (err) => { console.error(err && err.stack ? err.stack : err); process.exitCode = 2; });
