// The differential suite's independent decoder (see differential_test.go): Taquito's LocalForger
// for protocol 024. Reads JSON lines from stdin, each {"forge": {branch, contents}} or
// {"parse": "<hex without the magic byte>"}, and writes one JSON line per input, in order:
// {"hex": …} or {"parsed": …}, or {"error": "…"} when Taquito refuses.
import { LocalForger } from '@taquito/local-forging';
import readline from 'node:readline';

const forger = new LocalForger('PtTALLiNtPec7mE7yY4m3k26J8Qukef3E3ehzhfXgFZKGtDdAXu');
const out = [];
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line) continue;
  const req = JSON.parse(line);
  try {
    if (req.forge) {
      out.push(JSON.stringify({ hex: await forger.forge(req.forge) }));
    } else {
      out.push(JSON.stringify({ parsed: await forger.parse(req.parse) }));
    }
  } catch (e) {
    out.push(JSON.stringify({ error: String(e && e.message || e).slice(0, 200) }));
  }
}
process.stdout.write(out.join('\n') + '\n');
