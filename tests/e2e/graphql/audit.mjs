// Runs the graphql-http package's server audits (GraphQL over HTTP) against
// the URL given as the first argument. Prints one line per audit that did
// not pass, then a JSON summary line {"ok", "warn", "error", "problems"};
// exits 1 when an audit errored. Used by tests/e2e/graphql.rs.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs URL');
  process.exit(2);
}
const counts = { ok: 0, warn: 0, error: 0 };
const problems = [];
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  counts[result.status] += 1;
  if (result.status !== 'ok') {
    const line = `${result.status} ${audit.id} ${audit.name}: ${result.reason}`;
    problems.push(line);
    console.log(line);
  }
}
console.log(JSON.stringify({ ...counts, problems }));
process.exit(counts.error > 0 ? 1 : 0);
