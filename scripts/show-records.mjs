// Reads the NDJSON that `kinesalite.mjs read` prints and shows how many records arrived, per
// shard, and the first few decoded.
//   node scripts/kinesalite.mjs read --port P --stream S | node scripts/show-records.mjs [N]
const show = Number(process.argv[2] || 3);
let text = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (text += d));
process.stdin.on('end', () => {
  const records = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const perShard = {};
  for (const r of records) perShard[r.shard] = (perShard[r.shard] || 0) + 1;
  console.log(`${records.length} records read back from the stream (${Object.entries(perShard).map(([s, n]) => `${s}: ${n}`).join(', ')})`);
  for (const r of records.slice(0, show)) {
    const data = Buffer.from(r.data, 'base64').toString('utf8').trimEnd();
    console.log(`\n[${r.shard} #${r.sequenceNumber}] partition key ${r.partitionKey}\n${data.length > 400 ? data.slice(0, 400) + '…' : data}`);
  }
});
