// The tidy check (TigerBeetle-style): lines over 100 columns and functions over 70 lines in
// our TypeScript. Prints each finding as file:line and exits 1 if there is any.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import ts from 'typescript';

const MAX_COLUMNS = 100;
const MAX_FUNCTION_LINES = 70;
const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], {
  encoding: 'utf8',
}).split('\n').filter((f) => f.endsWith('.ts') && !f.startsWith('node_modules/'));

const findings = [];
for (const file of files) {
  let text;
  try { text = readFileSync(file, 'utf8'); } catch { continue; }
  text.split('\n').forEach((line, i) => {
    if (line.length > MAX_COLUMNS) findings.push(`${file}:${i + 1}: line has ${line.length} columns`);
  });
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const visit = (node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const isTestBlock = /\.test\.ts$/.test(file) && ts.isArrowFunction(node);
      if (end - start + 1 > MAX_FUNCTION_LINES && !isTestBlock) {
        findings.push(`${file}:${start + 1}: function spans ${end - start + 1} lines`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
}
for (const f of findings) console.log(f);
console.log(`tidy: ${files.length} files, ${findings.length} findings`);
process.exit(findings.length > 0 ? 1 : 0);
