// useJobPolling: a React hook over the DownloadJobs browser client.
//
// Copy this file and downloadjobs.js (served by the API at /static/downloadjobs.js,
// source: api/downloadjobs_api/static/downloadjobs.js) next to each other in your app.
// No build step of its own: plain JavaScript with JSDoc types, works in Vite, Next.js
// ('use client' components) and Create React App alike. See README.md here.
'use client';

import { useCallback, useEffect, useRef, useState } from 'react';

import { DownloadJobsClient, statusLabel } from './downloadjobs.js';

/** @type {DownloadJobsClient|null} */
let shared = null;

/**
 * One client per page, created on first use in the browser (never during server rendering,
 * where there is no window, fetch origin or localStorage).
 * @param {import('./downloadjobs.js').ClientOptions} [options] used only the first time
 */
export function getClient(options) {
  if (shared === null) shared = new DownloadJobsClient(options);
  return shared;
}

/**
 * @typedef {object} JobPolling
 * @property {import('./downloadjobs.js').JobUpdate|null} job  the latest state; null without a jobId
 * @property {string} label          "Queued, 3 ahead of you", "Preparing your download… 45%" …
 * @property {() => Promise<unknown>} cancel  cancel the job (DELETE); polling stops
 */

/**
 * Poll one job while the component is mounted; stops on completion, failure, cancellation
 * or unmount (an unmounted job stays pending in localStorage and resumes next time).
 *
 * @param {string|null|undefined} jobId
 * @param {{client?: DownloadJobsClient, onComplete?: 'link'|'download'}} [options]
 *   onComplete 'download' sends the browser to the bundle when it is ready;
 *   'link' (default) leaves it to you to render `job.downloadUrl`.
 * @returns {JobPolling}
 */
export function useJobPolling(jobId, options = {}) {
  const { client, onComplete = 'link' } = options;
  const [job, setJob] = useState(/** @type {import('./downloadjobs.js').JobUpdate|null} */ (null));
  const handle = useRef(/** @type {import('./downloadjobs.js').JobHandle|null} */ (null));

  useEffect(() => {
    if (!jobId) {
      setJob(null);
      return undefined;
    }
    const watched = (client ?? getClient()).watch(jobId, setJob, { onComplete, immediate: true });
    handle.current = watched;
    return () => {
      watched.stop();
      if (handle.current === watched) handle.current = null;
    };
  }, [jobId, client, onComplete]);

  const cancel = useCallback(async () => handle.current?.cancel(), []);
  return { job, label: job ? statusLabel(job) : '', cancel };
}

/**
 * Start a download; resolves with the new job's id (give it to useJobPolling).
 * Rejects with a DownloadJobsError ({status, code, message, requestId}) on a 4xx.
 * @param {number[]} fileIds
 * @param {DownloadJobsClient} [client]
 * @returns {Promise<string>}
 */
export async function startDownload(fileIds, client) {
  const created = await (client ?? getClient()).initiate(fileIds);
  return created.jobId;
}

/**
 * The ids of jobs this browser started and has not seen end: resume them after a reload,
 * e.g. `const [jobId, setJobId] = useState(() => pendingJobIds()[0] ?? null)`.
 * @param {DownloadJobsClient} [client]
 */
export function pendingJobIds(client) {
  if (typeof window === 'undefined') return [];
  return (client ?? getClient()).pendingJobs().map((job) => job.jobId);
}
