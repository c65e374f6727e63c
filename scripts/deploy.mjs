// `npm run deploy -- editor 1.1.0`: deploy a version to the running demo server; every open
// page switches to it. PORT (default 8080) or DEMO_URL say where the server is.
const [guest, version] = process.argv.slice(2);
if (guest !== 'editor' || !version) {
  console.error('usage: npm run deploy -- editor <version>   (e.g. 1.1.0)');
  process.exit(2);
}
const base = process.env.DEMO_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8080}`;
try {
  const response = await fetch(`${base}/api/deploy`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ version }),
  });
  const body = await response.text();
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${body}`);
  const { deployed } = JSON.parse(body);
  console.log(`deployed ${deployed.guest} ${deployed.version} (${deployed.sha256.slice(0, 12)}…): every open page is switching to it`);
} catch (error) {
  console.error(`deploy failed: ${error.message} (is the demo running at ${base}?)`);
  process.exit(1);
}
