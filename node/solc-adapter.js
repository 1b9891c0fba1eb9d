#!/usr/bin/env node
// A native-solc-compatible front end for solc-js, so py-solc-x and brownie compile offline.
//
// py-solc-x and brownie only ever run `solc --version` and `solc --standard-json [--allow-paths
// a,b] [--base-path p] [--include-path p]` with the input JSON on stdin. solc-js's own CLI differs
// (no native --version format, an SMT banner on stdout, imports only via --base-path), so this
// script loads the `solc` module directly and supplies an import callback restricted to the
// allowed paths. `--version` is answered by the generated wrapper without loading the wasm.
'use strict';

const fs = require('fs');
const path = require('path');

function parseArgs(argv) {
  const opts = { standardJson: false, allowPaths: [], basePath: null, includePaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`option ${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--standard-json') opts.standardJson = true;
    else if (arg === '--allow-paths') opts.allowPaths.push(...value().split(',').filter(Boolean));
    else if (arg === '--base-path') opts.basePath = value();
    else if (arg === '--include-path') opts.includePaths.push(value());
    else if (arg === '--version') opts.version = true;
    else fail(`unsupported option ${arg}: this solc-js adapter supports --version and --standard-json only`);
  }
  return opts;
}

function fail(message) {
  process.stderr.write(`solc-adapter: ${message}\n`);
  process.exitCode = 1;
  throw new Error(message);
}

function isInside(candidate, roots) {
  return roots.some((root) => {
    const rel = path.relative(root, candidate);
    return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
  });
}

function makeImportCallback(opts) {
  const searchRoots = [opts.basePath, ...opts.includePaths, process.cwd()].filter(Boolean).map((p) => path.resolve(p));
  const allowedRoots = [...searchRoots, ...opts.allowPaths.map((p) => path.resolve(p))];
  return function findImport(importPath) {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : searchRoots.map((root) => path.join(root, importPath));
    for (const candidate of candidates) {
      const resolved = path.resolve(candidate);
      if (!isInside(resolved, allowedRoots)) continue;
      if (fs.existsSync(resolved) && fs.statSync(resolved).isFile()) {
        return { contents: fs.readFileSync(resolved, 'utf8') };
      }
    }
    return { error: `File not found inside the allowed paths: ${importPath}` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const solc = require(path.join(process.env.CHAINML_NODE_MODULES || path.join(__dirname, '..', 'node_modules'), 'solc'));
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version().replace('Emscripten.clang', 'Linux.g++')}\n`);
    return;
  }
  if (!opts.standardJson) fail('expected --standard-json (input JSON on stdin)');
  const input = fs.readFileSync(0, 'utf8');
  const output = solc.compile(input, { import: makeImportCallback(opts) });
  // Let Node exit on its own once stdout drains: process.exit() here truncates piped output.
  process.stdout.write(output + '\n');
}

try {
  main();
} catch (err) {
  if (!process.exitCode) {
    process.stderr.write(`solc-adapter: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  }
}
