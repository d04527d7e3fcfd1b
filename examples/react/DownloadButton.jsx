// An example component: a Download button, a progress bar, Cancel, and the link at the end.
'use client';

import { useState } from 'react';

import { pendingJobIds, startDownload, useJobPolling } from './useJobPolling.js';

export function DownloadButton({ fileIds }) {
  // After a reload, pick up the job this browser was waiting for.
  const [jobId, setJobId] = useState(() => pendingJobIds()[0] ?? null);
  const [error, setError] = useState(null);
  const { job, label, cancel } = useJobPolling(jobId);

  async function start() {
    setError(null);
    try {
      setJobId(await startDownload(fileIds));
    } catch (err) {
      setError(err.message); // a 400/413/429 envelope's message
    }
  }

  const busy = job && !job.terminal;
  return (
    <div>
      <button onClick={start} disabled={busy}>Download</button>
      {job && (
        <>
          <progress max={100} value={job.progress} aria-valuetext={label} />
          <span role="status">{label}</span>
          {busy && <button onClick={cancel}>Cancel</button>}
          {job.status === 'completed' && <a href={job.downloadUrl}>Download ready</a>}
          {(job.status === 'failed' || job.status === 'cancelled') && (
            <button onClick={start}>Retry</button>
          )}
        </>
      )}
      {error && <p role="alert">{error}</p>}
    </div>
  );
}
