// A frontend on its own origin (a React dev server, say): it imports the browser client
// from the API and downloads through it. ?api=<the API's origin>. It reports in the DOM.
const api = new URLSearchParams(location.search).get('api');
const report = document.body.dataset;

try {
  const { DownloadJobsClient } = await import(`${api}/static/downloadjobs.js`);
  const client = new DownloadJobsClient({
    baseUrl: api,
    schedule: { firstMs: 500, maxMs: 1000 },
    navigate: () => {},
  });
  const handle = await client.start([70000, 70001], (update) => {
    report.status = update.status;
  });
  report.jobId = handle.jobId;
  const final = await handle.done;
  report.status = final.status;
  report.downloadUrl = final.downloadUrl ?? '';
  // What a script on this origin can read of the API's answers.
  const poll = await fetch(`${api}/v1/download/jobs/${encodeURIComponent(final.jobId)}`, {
    headers: { Prefer: 'wait=0' },
  });
  const names = ['ETag', 'X-Request-ID', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'];
  report.headers = JSON.stringify(Object.fromEntries(names.map((n) => [n, poll.headers.get(n)])));
  const index = await fetch(`${api}/`, { headers: { Accept: 'application/json' } });
  report.index = (await index.json()).name;
} catch (error) {
  report.error = String(error);
}
