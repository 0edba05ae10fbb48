// The peer in `make bench`: the AWS SDK for JavaScript v3 sending NDJSON records with PutRecords
// in batches of 500 to the same local sink, `--concurrency` requests in flight.
//
//   node scripts/bench-js-sdk.mjs --file F --endpoint http://127.0.0.1:PORT --stream S \
//        --key pod|random --concurrency 4
//
// Prints one JSON line: {"records":…, "seconds":…}. The caller measures this process's CPU.
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const toolsDir = process.env.KINESIS_TOOLS_DIR || path.join(here, '..', '.tools', 'node');
const require = createRequire(path.join(toolsDir, 'package.json'));
const { KinesisClient, PutRecordsCommand } = require('@aws-sdk/client-kinesis');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];

const client = new KinesisClient({
  region: 'us-east-1',
  endpoint: args.endpoint,
  credentials: { accessKeyId: 'AKIDBENCHMARK', secretAccessKey: 'bench-secret' },
  maxAttempts: 1,
});

const started = process.hrtime.bigint();
// Lines as Buffer slices (a 1 GB file is longer than a JS string may be); each keeps its newline,
// so Data is the line plus "\n", the bytes kinesis-output sends with the json format.
const file = fs.readFileSync(args.file);
const batches = [];
let batch = [];
for (let start = 0; start < file.length; ) {
  let end = file.indexOf(10, start);
  if (end < 0) end = file.length - 1;
  const line = file.subarray(start, end + 1);
  start = end + 1;
  if (line.length <= 1) continue;
  const key = args.key === 'random' ? randomBytes(16).toString('hex') : JSON.parse(line.toString())[args.key];
  batch.push({ Data: line, PartitionKey: key });
  if (batch.length === 500) {
    batches.push(batch);
    batch = [];
  }
}
if (batch.length) batches.push(batch);

let next = 0;
let records = 0;
async function worker() {
  while (next < batches.length) {
    const b = batches[next++];
    const out = await client.send(new PutRecordsCommand({ StreamName: args.stream, Records: b }));
    if (out.FailedRecordCount) throw new Error(`${out.FailedRecordCount} records failed`);
    records += b.length;
  }
}
await Promise.all(Array.from({ length: Number(args.concurrency || 1) }, worker));
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({ records, seconds }));
