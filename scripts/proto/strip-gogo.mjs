// Copies the Debian-shipped .proto files into a temporary tree, minus everything that only matters to Go code
// generators: the gogoproto / containerd fieldpath imports and options. Field names, numbers, types and
// packages are untouched, so the wire format is exactly the one the Go shims speak. It also shortens import
// paths (github.com/containerd/containerd/... -> containerd/...) so the generated files get short paths.
//
// usage: node strip-gogo.mjs <dest-dir> <src-root>:<rel-path>=<dest-rel-path> ...
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const IMPORT_PREFIXES = [
  ['github.com/containerd/containerd/', 'containerd/'],
  ['github.com/containerd/cgroups/', 'cgroups/'],
];
const DROPPED_IMPORTS = new Set(['gogoproto/gogo.proto', 'github.com/containerd/containerd/protobuf/plugin/fieldpath.proto']);
const GO_ONLY_OPTION = /^\s*option\s+\((gogoproto|containerd\.plugin)\.\w+\)\s*=\s*[^;]*;\s*$/;
const IMPORT_LINE = /^\s*import\s+(weak\s+|public\s+)?"([^"]+)"\s*;\s*$/;
// A [..] option list made only of (gogoproto.x) = value entries, e.g. [(gogoproto.nullable) = false, ...].
const GOGO_FIELD_OPTIONS = /\s*\[\s*\(gogoproto\.\w+\)\s*=\s*(?:"[^"]*"|[\w.]+)(?:\s*,\s*\(gogoproto\.\w+\)\s*=\s*(?:"[^"]*"|[\w.]+))*\s*\]/g;

function strip(text, name) {
  const out = [];
  for (const line of text.split('\n')) {
    const imp = IMPORT_LINE.exec(line);
    if (imp) {
      const path = imp[2];
      if (DROPPED_IMPORTS.has(path)) continue;
      const prefix = IMPORT_PREFIXES.find(([from]) => path.startsWith(from));
      out.push(prefix ? `import "${prefix[1]}${path.slice(prefix[0].length)}";` : line);
      continue;
    }
    if (GO_ONLY_OPTION.test(line)) continue;
    out.push(line.replace(GOGO_FIELD_OPTIONS, ''));
  }
  const result = out.join('\n');
  // Anything left means an option form this script does not know: stop rather than guess.
  const left = /gogoproto|containerd\.plugin/.exec(result);
  if (left) {
    const lineNo = result.slice(0, left.index).split('\n').length;
    throw new Error(`${name}:${lineNo}: Go-only option not stripped: ${result.split('\n')[lineNo - 1]?.trim()}`);
  }
  return result;
}

const [dest, ...specs] = process.argv.slice(2);
if (!dest || specs.length === 0) {
  console.error('usage: strip-gogo.mjs <dest-dir> <src-root>:<rel-path>=<dest-rel-path> ...');
  process.exit(2);
}
for (const spec of specs) {
  const m = /^([^:]+):([^=]+)=(.+)$/.exec(spec);
  if (!m) throw new Error(`bad spec ${spec}`);
  const [, root, rel, destRel] = m;
  const src = join(root, rel);
  const target = join(dest, destRel);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, strip(readFileSync(src, 'utf8'), src));
}
