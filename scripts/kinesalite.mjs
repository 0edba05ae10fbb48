// A local Kinesis for `make run` and the integration tests: kinesalite (npm), bound to 127.0.0.1.
//
//   node scripts/kinesalite.mjs serve --port 0 --stream NAME[,NAME…] [--shards 2]
//       starts kinesalite, creates the streams, waits until they are ACTIVE, prints `ready PORT`, and
//       runs until stdin closes or it gets SIGTERM/SIGINT.
//   node scripts/kinesalite.mjs read --port PORT --stream NAME
//       reads every record of every shard with GetRecords and prints one JSON line each:
//       {"shard":…,"sequenceNumber":…,"partitionKey":…,"data":<base64>}
//
// kinesalite comes from the git-ignored folder .tools/node (the Makefile installs it there).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const toolsDir = process.env.KINESIS_TOOLS_DIR || path.join(here, '..', '.tools', 'node');

function args() {
  const out = { _: [] };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) out[argv[i].slice(2)] = argv[++i];
    else out._.push(argv[i]);
  }
  return out;
}

// kinesalite checks that a signature is present and well formed, not that it is right.
async function call(port, operation, body) {
  const res = await fetch(`http://127.0.0.1:${port}/`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-amz-json-1.1',
      'X-Amz-Target': `Kinesis_20131202.${operation}`,
      'X-Amz-Date': '20240101T000000Z',
      Authorization:
        'AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000',
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${operation}: HTTP ${res.status}: ${text}`);
  return text ? JSON.parse(text) : {};
}

async function serve(opts) {
  const require = createRequire(path.join(toolsDir, 'package.json'));
  const kinesalite = require('kinesalite');
  const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(opts.port || 0), '127.0.0.1', resolve);
  });
  const port = server.address().port;
  for (const stream of opts.stream.split(',')) {
    await call(port, 'CreateStream', { StreamName: stream, ShardCount: Number(opts.shards || 2) });
    for (let i = 0; i < 100; i++) {
      const d = await call(port, 'DescribeStream', { StreamName: stream });
      if (d.StreamDescription.StreamStatus === 'ACTIVE') break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  console.log(`ready ${port}`);
}

async function read(opts) {
  const port = Number(opts.port);
  const d = await call(port, 'DescribeStream', { StreamName: opts.stream });
  const lines = [];
  for (const shard of d.StreamDescription.Shards) {
    let { ShardIterator: it } = await call(port, 'GetShardIterator', {
      StreamName: opts.stream,
      ShardId: shard.ShardId,
      ShardIteratorType: 'TRIM_HORIZON',
    });
    for (let round = 0; it && round < 100000; round++) {
      const r = await call(port, 'GetRecords', { ShardIterator: it, Limit: 10000 });
      for (const rec of r.Records) {
        lines.push(
          JSON.stringify({
            shard: shard.ShardId,
            sequenceNumber: rec.SequenceNumber,
            partitionKey: rec.PartitionKey,
            data: rec.Data,
          }),
        );
      }
      if (r.Records.length === 0) break;
      it = r.NextShardIterator;
    }
  }
  process.stdout.write(lines.length ? lines.join('\n') + '\n' : '');
}

const opts = args();
const command = opts._[0];
const run = command === 'serve' ? serve : command === 'read' ? read : null;
if (!run || !opts.stream || (command === 'read' && !opts.port)) {
  console.error('usage: kinesalite.mjs serve --port P --stream S [--shards N] | read --port P --stream S');
  process.exit(2);
}
run(opts).catch((e) => {
  console.error(e.message);
  process.exit(1);
});
