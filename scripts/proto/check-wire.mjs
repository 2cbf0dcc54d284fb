// Proves the gogo stripping changed nothing on the wire: compares two FileDescriptorSets (the Debian originals,
// compiled with gogo.proto on the include path, and the stripped copies) by package, message, field name,
// number, label, type and type name, oneof membership and enum values. Options and file paths are ignored.
//
// usage: node check-wire.mjs <original.pb> <stripped.pb>
import { readFileSync } from 'node:fs';
import { fromBinary, isFieldSet } from '@bufbuild/protobuf';
import { FieldDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

function shape(setPath) {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(setPath));
  const out = new Map();
  const enumShape = (e) => e.value.map((v) => `${v.name}=${v.number}`).join(',');
  const walk = (prefix, messages, enums) => {
    for (const e of enums) out.set(`${prefix}.${e.name}`, `enum ${enumShape(e)}`);
    for (const m of messages) {
      const name = `${prefix}.${m.name}`;
      const oneof = (f) => (isFieldSet(f, FieldDescriptorProtoSchema.field.oneofIndex) ? m.oneofDecl[f.oneofIndex]?.name : '');
      const fields = m.field.map((f) => `${f.name}=${f.number}:${f.label}:${f.type}:${f.typeName}:${oneof(f)}`);
      out.set(name, `message ${fields.join(',')}`);
      walk(name, m.nestedType, m.enumType);
    }
  };
  for (const file of set.file) {
    if (['gogoproto', 'containerd.plugin', 'google.protobuf'].includes(file.package)) continue;
    walk(file.package, file.messageType, file.enumType);
  }
  return out;
}

const [originalPath, strippedPath] = process.argv.slice(2);
const original = shape(originalPath);
const stripped = shape(strippedPath);
const problems = [];
for (const [name, s] of original) {
  if (!stripped.has(name)) problems.push(`missing after strip: ${name}`);
  else if (stripped.get(name) !== s) problems.push(`changed by strip: ${name}\n  was ${s}\n  now ${stripped.get(name)}`);
}
for (const name of stripped.keys()) if (!original.has(name)) problems.push(`added by strip: ${name}`);
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`wire check: ${original.size} message/enum types identical after stripping gogo options`);
