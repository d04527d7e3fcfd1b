// The demo page: a form that starts downloads and a list of this browser's recent jobs,
// each with a progress bar, a label and the action its state allows. All the polling
// logic is in downloadjobs.js; this file only renders states. No innerHTML anywhere:
// the page runs under a Content-Security-Policy that requires Trusted Types.

import { DownloadJobsClient, isTerminal, statusLabel } from './downloadjobs.js';

// The API root is where this module is served from, minus /static/: it works behind a path prefix.
const apiRoot = new URL('../', import.meta.url).href;
const client = new DownloadJobsClient({ baseUrl: apiRoot });

const form = /** @type {HTMLFormElement} */ (document.getElementById('request'));
const idsInput = /** @type {HTMLInputElement} */ (document.getElementById('file-ids'));
const autoDownload = /** @type {HTMLInputElement} */ (document.getElementById('auto-download'));
const formError = /** @type {HTMLElement} */ (document.getElementById('form-error'));
const list = /** @type {HTMLOListElement} */ (document.getElementById('jobs'));
const empty = /** @type {HTMLElement} */ (document.getElementById('empty'));
const template = /** @type {HTMLTemplateElement} */ (document.getElementById('job-template'));

/** @returns {'download'|'link'} */
function completionMode() {
  return autoDownload.checked ? 'download' : 'link';
}

/**
 * "70000, 70001 70002-70004" → [70000, 70001, 70002, 70003, 70004]; throws on nonsense.
 * @param {string} text
 */
export function parseIds(text) {
  const ids = [];
  for (const part of text.split(/[\s,;]+/).filter(Boolean)) {
    const range = /^(\d+)-(\d+)$/.exec(part);
    if (range) {
      const [low, high] = [Number(range[1]), Number(range[2])];
      if (high < low || high - low >= 1000) throw new Error(`"${part}" is not a sensible range`);
      for (let id = low; id <= high; id++) ids.push(id);
    } else if (/^\d+$/.test(part)) {
      ids.push(Number(part));
    } else {
      throw new Error(`"${part}" is not a file id`);
    }
  }
  if (ids.length === 0) throw new Error('Enter at least one file id.');
  return [...new Set(ids)];
}

/** @param {number} bytes */
function humanSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/**
 * The card of one job: created once, updated on every state. New cards go on top;
 * `older` ones (listed by the server after the page loaded) at the bottom.
 * @param {import('./downloadjobs.js').StoredJob} job
 * @param {boolean} [older]
 */
function card(job, older = false) {
  let item = /** @type {HTMLLIElement|null} */ (list.querySelector(`li[data-job-id="${CSS.escape(job.jobId)}"]`));
  if (item) return item;
  const fragment = /** @type {DocumentFragment} */ (template.content.cloneNode(true));
  item = /** @type {HTMLLIElement} */ (fragment.querySelector('li'));
  item.dataset.jobId = job.jobId;
  const ids = job.fileIds.length > 6 ? `${job.fileIds.slice(0, 6).join(', ')} … (${job.fileIds.length} files)` : job.fileIds.join(', ');
  /** @type {HTMLElement} */ (item.querySelector('.files')).textContent = ids || job.jobId;
  /** @type {HTMLElement} */ (item.querySelector('.job-id')).textContent = job.jobId;
  const when = new Date(job.createdAt);
  /** @type {HTMLElement} */ (item.querySelector('time')).textContent = Number.isNaN(when.getTime()) ? '' : when.toLocaleTimeString();
  item.querySelector('.cancel')?.addEventListener('click', () => void cancel(job.jobId));
  item.querySelector('.retry')?.addEventListener('click', () => void start(job.fileIds));
  item.querySelector('.forget')?.addEventListener('click', () => {
    client.forget(job.jobId);
    item?.remove();
    empty.hidden = list.children.length > 0;
  });
  if (older) list.append(item);
  else list.prepend(item);
  empty.hidden = true;
  return item;
}

/**
 * @param {import('./downloadjobs.js').JobUpdate} state
 * @param {import('./downloadjobs.js').StoredJob} [listed] a job the server listed, not stored here
 */
function render(state, listed) {
  const job = client.recentJobs().find((entry) => entry.jobId === state.jobId) ?? listed ?? {
    jobId: state.jobId,
    fileIds: [],
    createdAt: '',
    status: state.status,
    progress: state.progress,
  };
  const item = card(job);
  item.dataset.status = state.reconnecting ? 'reconnecting' : state.status;
  const bar = /** @type {HTMLProgressElement} */ (item.querySelector('progress'));
  bar.value = state.progress;
  bar.setAttribute('aria-valuetext', statusLabel(state));
  /** @type {HTMLElement} */ (item.querySelector('.label')).textContent = statusLabel(state);

  const link = /** @type {HTMLAnchorElement} */ (item.querySelector('.download'));
  link.hidden = !(state.status === 'completed' && state.downloadUrl);
  if (state.downloadUrl) {
    // The API's /file redirect presigns afresh on every click: a link left open on
    // the page outlives the presigned URL in the answer.
    link.href = client.url(`/v1/download/jobs/${encodeURIComponent(state.jobId)}/file`);
    const size = state.result && 'size' in state.result ? ` (${humanSize(Number(state.result.size))})` : '';
    link.textContent = `Download ready${size}`;
  }
  const missing = state.result && 'missingFileIds' in state.result ? /** @type {number[]} */ (state.result.missingFileIds) : [];
  const note = /** @type {HTMLElement} */ (item.querySelector('.note'));
  note.textContent = missing.length ? `Not found, left out: ${missing.join(', ')}` : '';
  note.hidden = missing.length === 0;
  /** @type {HTMLElement} */ (item.querySelector('.reason')).textContent = state.error?.reason ?? '';
  /** @type {HTMLElement} */ (item.querySelector('.why')).hidden = !state.error;
  /** @type {HTMLButtonElement} */ (item.querySelector('.cancel')).hidden = state.terminal;
  // Retry starts a new job with the same ids, so only where this browser knows them.
  const retryable = (state.status === 'failed' || state.status === 'cancelled') && job.fileIds.length > 0;
  /** @type {HTMLButtonElement} */ (item.querySelector('.retry')).hidden = !retryable;
  /** @type {HTMLButtonElement} */ (item.querySelector('.forget')).hidden = !state.terminal;
}

/** @param {string} jobId */
async function cancel(jobId) {
  try {
    render(await client.cancel(jobId));
  } catch (error) {
    formError.textContent = `Could not cancel: ${error instanceof Error ? error.message : error}`;
  }
}

/** @param {number[]} fileIds */
async function start(fileIds) {
  formError.textContent = '';
  try {
    await client.start(fileIds, render, { onComplete: completionMode() });
  } catch (error) {
    formError.textContent = error instanceof Error ? error.message : String(error);
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  let ids;
  try {
    ids = parseIds(idsInput.value);
  } catch (error) {
    formError.textContent = error instanceof Error ? error.message : String(error);
    return;
  }
  void start(ids);
});

// The recent list, oldest first so the newest ends on top; then polling resumes for the
// ones still running, and finished ones are asked once more (a fresh download URL).
const recent = client.recentJobs();
for (const job of [...recent].reverse()) card(job);
empty.hidden = recent.length > 0;
client.resume(render, { onComplete: completionMode() });
for (const job of recent.filter((entry) => isTerminal(entry.status))) {
  client.watch(job.jobId, render, { onComplete: 'link', immediate: true });
}
document.body.dataset.ready = 'true';

// Where the API lists the caller's jobs (GET /v1/download/jobs), jobs started from another
// tab or device join the list too; without that endpoint the list is this browser's own.
// They are older than anything started here, so they go below, newest first as listed.
void client.serverJobs().then((items) => {
  const known = new Set(client.recentJobs().map((job) => job.jobId));
  for (const item of items ?? []) {
    if (!item || typeof item.jobId !== 'string' || known.has(item.jobId)) continue;
    /** @type {import('./downloadjobs.js').StoredJob} */
    const job = {
      jobId: item.jobId,
      fileIds: Array.isArray(item.fileIds) ? item.fileIds : [],
      createdAt: item.createdAt ?? '',
      status: item.status ?? 'queued',
      progress: item.progress ?? 0,
    };
    card(job, true);
    client.watch(item.jobId, (state) => render(state, job), { onComplete: 'link', immediate: true });
  }
});
