// DownloadJobs browser client: initiate a download, poll it, hand the bundle to the person.
//
// A framework-free ES module (no build step, no dependencies). Served by the API at
// /static/downloadjobs.js; copy it into an app or import it from there. Everything
// the outside world provides (fetch, timers, storage, randomness, navigation) can be
// injected, which is how the unit tests under Node drive it with a fake clock.
//
// Why it polls the way it does:
// - first poll 2 s after the job starts, then each wait grows by `growth` up to 5 s,
//   so a short job feels instant and a long one costs a request every 5 s at most;
// - a `Retry-After` on a 429/503 is a floor on the next wait, however long; on a 200 it
//   is the server's suggested interval, followed within the 2-5 s window;
// - an `ETag` is sent back as `If-None-Match`; a 304 reuses the last answer;
// - network errors and 5xx answers never give the job up: the client says it is
//   reconnecting and retries with exponential back-off and jitter (so a thousand
//   tabs do not come back in the same second after an outage);
// - pending job ids live in localStorage, so a page refresh resumes polling.

/**
 * @typedef {'initiating'|'queued'|'processing'|'completed'|'failed'|'cancelled'} JobStatus
 *
 * @typedef {object} JobError
 * @property {string} reason   machine-readable, e.g. "AllFilesMissing"
 * @property {string} message  a sentence for a person
 *
 * @typedef {object} JobUpdate  what the callback receives after every change
 * @property {string} jobId
 * @property {JobStatus} status
 * @property {number} progress          0..100, by bytes
 * @property {number|null} queuePosition 1 is next; null when not queued
 * @property {number} attempts           server-side attempts (2+ means the job is being retried)
 * @property {JobError|null} error
 * @property {string|null} downloadUrl   presigned, short-lived; only when completed
 * @property {object|null} result        the server's `result` (size, checksumCrc32, missingFileIds …)
 * @property {boolean} reconnecting      the last poll failed (network, 5xx); retrying
 * @property {number} retryAttempt       consecutive failed polls (0 when the last one worked)
 * @property {boolean} terminal          completed, failed or cancelled: polling has stopped
 *
 * @typedef {object} Schedule
 * @property {number} firstMs     wait before the first poll of a new job (2000)
 * @property {number} maxMs       the longest wait between polls of a running job (5000)
 * @property {number} growth      factor applied to the wait after every poll (1.2)
 * @property {number} retryBaseMs first wait after a failed poll, before jitter (1000)
 * @property {number} retryMaxMs  the longest wait after failed polls (15000)
 *
 * @typedef {'link'|'download'} CompletionMode
 *   link: report `downloadUrl` and let the UI show a "Download ready" link;
 *   download: also navigate to it (`window.location.href = downloadUrl`).
 *
 * @typedef {object} StoredJob
 * @property {string} jobId
 * @property {number[]} fileIds
 * @property {string} createdAt  ISO time
 * @property {JobStatus} status  last status seen
 * @property {number} progress   last progress seen
 */

/** @type {Readonly<Schedule>} */
export const DEFAULT_SCHEDULE = Object.freeze({
  firstMs: 2000,
  maxMs: 5000,
  growth: 1.2,
  retryBaseMs: 1000,
  retryMaxMs: 15000,
});

export const TERMINAL = Object.freeze(['completed', 'failed', 'cancelled']);

/** @param {string} status */
export function isTerminal(status) {
  return TERMINAL.includes(status);
}

/**
 * Wait before the next poll of a job that answered `polls` times already.
 * 2000, 2400, 2880, 3456, 4147, 4977, then 5000 for as long as the job runs.
 * @param {number} polls
 * @param {Schedule} [schedule]
 */
export function pollDelay(polls, schedule = DEFAULT_SCHEDULE) {
  return Math.min(schedule.maxMs, Math.round(schedule.firstMs * schedule.growth ** polls));
}

/**
 * Wait after the `attempt`-th consecutive failure (1-based): exponential, capped, with
 * "equal jitter" — half fixed, half random — so it never retries at once yet spreads out.
 * @param {number} attempt
 * @param {Schedule} [schedule]
 * @param {() => number} [random] uniform in [0, 1)
 */
export function retryDelay(attempt, schedule = DEFAULT_SCHEDULE, random = Math.random) {
  const ceiling = Math.min(schedule.retryMaxMs, schedule.retryBaseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * Wait before the next poll after a successful answer. A `Retry-After` on a 200 is the
 * server's suggested interval: followed within the schedule's window, so it can slow
 * polling towards `maxMs` but never leave a person staring at a frozen bar for longer.
 * (On a 429 or 503 it is a floor, however long: see JobWatch.poll.)
 * @param {number} polls answers so far
 * @param {number|null} retryAfterMs
 * @param {Schedule} [schedule]
 */
export function nextPoll(polls, retryAfterMs, schedule = DEFAULT_SCHEDULE) {
  const scheduled = pollDelay(polls, schedule);
  if (retryAfterMs == null) return scheduled;
  return Math.min(Math.max(scheduled, schedule.maxMs), Math.max(scheduled, retryAfterMs));
}

/**
 * Milliseconds a `Retry-After` header asks to wait: delta-seconds or an HTTP date.
 * @param {string|null|undefined} value
 * @param {number} [nowMs]
 * @returns {number|null} null when absent or unreadable
 */
export function parseRetryAfter(value, nowMs = Date.now()) {
  if (value == null) return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const when = Date.parse(text);
  if (Number.isNaN(when)) return null;
  return Math.max(0, when - nowMs);
}

/**
 * The state of one job as the UI sees it, before any answer.
 * @param {string} jobId
 * @param {JobStatus} [status]
 * @returns {JobUpdate}
 */
export function initialState(jobId, status = 'queued') {
  return {
    jobId,
    status,
    progress: 0,
    queuePosition: null,
    attempts: 0,
    error: null,
    downloadUrl: null,
    result: null,
    reconnecting: false,
    retryAttempt: 0,
    terminal: isTerminal(status),
  };
}

/**
 * The state machine: the next state after an event. Pure; a terminal state absorbs
 * every later event (a late answer cannot resurrect a cancelled job).
 *
 * Events: {type: 'answer', body} a status answer (200, or the cached body on 304);
 * {type: 'unreachable'} a network error or 5xx; {type: 'throttled'} a 429;
 * {type: 'cancelled'} the cancel request was accepted; {type: 'gone'} 404;
 * {type: 'refused', error} any other 4xx.
 * @param {JobUpdate} state
 * @param {{type: string, body?: any, error?: JobError}} event
 * @returns {JobUpdate}
 */
export function reduce(state, event) {
  if (state.terminal) return state;
  switch (event.type) {
    case 'answer': {
      const body = event.body ?? {};
      const status = /** @type {JobStatus} */ (body.status ?? state.status);
      return {
        ...state,
        status,
        progress: clampProgress(body.progress ?? state.progress),
        queuePosition: status === 'queued' ? (body.queuePosition ?? null) : null,
        attempts: body.attempts ?? state.attempts,
        error: body.error ?? null,
        result: body.result ?? null,
        downloadUrl: body.result?.downloadUrl ?? null,
        reconnecting: false,
        retryAttempt: 0,
        terminal: isTerminal(status),
      };
    }
    case 'unreachable':
      return { ...state, reconnecting: true, retryAttempt: state.retryAttempt + 1 };
    case 'throttled':
      return { ...state, retryAttempt: state.retryAttempt + 1 };
    case 'cancelled':
      return { ...state, status: 'cancelled', queuePosition: null, reconnecting: false, retryAttempt: 0, terminal: true };
    case 'gone':
      return {
        ...state,
        status: 'failed',
        reconnecting: false,
        error: { reason: 'NotFound', message: 'This job no longer exists: it expired or was removed.' },
        terminal: true,
      };
    case 'refused':
      return { ...state, status: 'failed', reconnecting: false, error: event.error ?? null, terminal: true };
    default:
      return state;
  }
}

/** @param {number} value */
function clampProgress(value) {
  const number = Number(value);
  return Number.isFinite(number) ? Math.max(0, Math.min(100, Math.round(number))) : 0;
}

/**
 * The sentence a progress bar's label shows for a state.
 * @param {JobUpdate} state
 */
export function statusLabel(state) {
  if (state.reconnecting) {
    return `Reconnecting… (attempt ${state.retryAttempt})`;
  }
  switch (state.status) {
    case 'initiating':
      return 'Starting…';
    case 'queued': {
      const ahead = state.queuePosition == null ? null : state.queuePosition - 1;
      if (ahead == null) return 'Queued';
      if (ahead <= 0) return 'Queued, you are next';
      return `Queued, ${ahead} ahead of you`;
    }
    case 'processing':
      if (state.attempts >= 2) return `Retrying, attempt ${state.attempts} — ${state.progress}%`;
      return `Preparing your download… ${state.progress}%`;
    case 'completed':
      return 'Download ready';
    case 'failed':
      return `Failed: ${state.error?.message ?? 'unknown error'}`;
    case 'cancelled':
      return 'Cancelled';
    default:
      return state.status;
  }
}

/** An answer the API refused, with its `{error, message, requestId}` envelope. */
export class DownloadJobsError extends Error {
  /**
   * @param {number} status HTTP status (0 when the API was unreachable)
   * @param {{error?: string, message?: string, requestId?: string}} body
   */
  constructor(status, body) {
    super(body.message ?? `HTTP ${status}`);
    this.name = 'DownloadJobsError';
    this.status = status;
    this.code = body.error ?? 'ERROR';
    this.requestId = body.requestId ?? null;
  }
}

/** Storage that forgets on reload: where localStorage is missing or refused (private mode). */
export class MemoryStorage {
  constructor() {
    /** @type {Map<string, string>} */
    this.items = new Map();
  }
  /** @param {string} key */
  getItem(key) {
    return this.items.has(key) ? /** @type {string} */ (this.items.get(key)) : null;
  }
  /** @param {string} key @param {string} value */
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  /** @param {string} key */
  removeItem(key) {
    this.items.delete(key);
  }
}

function defaultStorage() {
  try {
    const storage = globalThis.localStorage;
    if (storage) {
      storage.setItem('downloadjobs.probe', '1');
      storage.removeItem('downloadjobs.probe');
      return storage;
    }
  } catch {
    // Refused (privacy settings): fall through to memory.
  }
  return new MemoryStorage();
}

/**
 * @typedef {object} ClientOptions
 * @property {string} [baseUrl]  the API's origin (and path prefix); '' for the page's own
 * @property {typeof fetch} [fetch]
 * @property {Pick<Storage, 'getItem'|'setItem'|'removeItem'>} [storage] localStorage by default
 * @property {string} [storageKey]
 * @property {number} [maxRecent] how many jobs the recent list keeps (20)
 * @property {Partial<Schedule>} [schedule]
 * @property {{setTimeout: (fn: () => void, ms: number) => any, clearTimeout: (id: any) => void}} [timers]
 * @property {() => number} [random]
 * @property {() => number} [now]
 * @property {(url: string) => void} [navigate] how "download" mode starts the download
 *
 * @typedef {object} WatchOptions
 * @property {CompletionMode} [onComplete] 'link' (default) or 'download'
 * @property {boolean} [immediate] first poll at once (resuming) instead of after firstMs
 *
 * @typedef {object} JobHandle
 * @property {string} jobId
 * @property {() => JobUpdate} state   the latest state
 * @property {() => Promise<JobUpdate>} cancel  cancel the job on the server; stops polling
 * @property {() => void} stop          stop polling (unmount); the job keeps running and stays pending
 * @property {Promise<JobUpdate>} done  settles with the terminal state
 */

export class DownloadJobsClient {
  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl ?? '').replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.storage = options.storage ?? defaultStorage();
    this.storageKey = options.storageKey ?? 'downloadjobs.jobs';
    this.maxRecent = options.maxRecent ?? 20;
    /** @type {Schedule} */
    this.schedule = { ...DEFAULT_SCHEDULE, ...options.schedule };
    this.timers = options.timers ?? {
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (id) => globalThis.clearTimeout(id),
    };
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.navigate =
      options.navigate ??
      ((url) => {
        globalThis.location.href = url;
      });
    /** @type {Map<string, JobWatch>} */
    this.watches = new Map();
  }

  /** @param {string} path */
  url(path) {
    return `${this.baseUrl}${path}`;
  }

  /**
   * Ask for a bundle. Resolves with the server's answer ({jobId, status, totalFileIds})
   * and records the job as pending. A 429/503 is retried after its Retry-After (3 times);
   * a network error is thrown, never retried: a lost answer might hide a created job.
   * @param {number[]} fileIds
   */
  async initiate(fileIds) {
    for (let attempt = 1; ; attempt++) {
      const response = await this.fetch(this.url('/v1/download/initiate'), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ file_ids: fileIds }),
      });
      if ((response.status === 429 || response.status === 503) && attempt <= 3) {
        const wait = parseRetryAfter(response.headers.get('Retry-After'), this.now());
        await this.sleep(Math.max(wait ?? 0, retryDelay(attempt, this.schedule, this.random)));
        continue;
      }
      const body = await readJson(response);
      if (!response.ok) throw new DownloadJobsError(response.status, body ?? {});
      this.remember({
        jobId: body.jobId,
        fileIds: [...fileIds],
        createdAt: new Date(this.now()).toISOString(),
        status: body.status ?? 'queued',
        progress: 0,
      });
      return body;
    }
  }

  /**
   * Initiate and watch: the usual one call of a "Download" button.
   * @param {number[]} fileIds
   * @param {(update: JobUpdate) => void} onUpdate
   * @param {WatchOptions} [options]
   */
  async start(fileIds, onUpdate, options = {}) {
    const created = await this.initiate(fileIds);
    return this.watch(created.jobId, onUpdate, { ...options, immediate: false });
  }

  /**
   * Poll one job until it ends, reporting every change to `onUpdate`. Watching a job
   * that is watched already returns the same handle (with the new callback added).
   * @param {string} jobId
   * @param {(update: JobUpdate) => void} onUpdate
   * @param {WatchOptions} [options]
   * @returns {JobHandle}
   */
  watch(jobId, onUpdate, options = {}) {
    let watch = this.watches.get(jobId);
    if (watch) {
      watch.listeners.add(onUpdate);
      onUpdate(watch.state);
      return watch.handle(onUpdate);
    }
    const stored = this.recentJobs().find((job) => job.jobId === jobId);
    watch = new JobWatch(this, jobId, options, stored);
    watch.listeners.add(onUpdate);
    this.watches.set(jobId, watch);
    watch.begin();
    return watch.handle(onUpdate);
  }

  /**
   * Resume polling every job this browser started and has not seen end (after a refresh).
   * @param {(update: JobUpdate) => void} onUpdate
   * @param {WatchOptions} [options]
   */
  resume(onUpdate, options = {}) {
    return this.pendingJobs().map((job) => this.watch(job.jobId, onUpdate, { ...options, immediate: true }));
  }

  /**
   * Cancel a job (DELETE). Resolves with its final state: cancelled, or whatever it
   * finished as when it was too late (409).
   * @param {string} jobId
   * @returns {Promise<JobUpdate>}
   */
  async cancel(jobId) {
    const watch = this.watches.get(jobId);
    if (watch) return watch.cancel();
    const response = await this.fetch(this.url(`/v1/download/jobs/${encodeURIComponent(jobId)}`), {
      method: 'DELETE',
      headers: { Accept: 'application/json' },
    });
    const body = await readJson(response);
    if (response.status === 409) return reduce(initialState(jobId), { type: 'answer', body: await this.status(jobId) });
    if (!response.ok) throw new DownloadJobsError(response.status, body ?? {});
    const state = reduce(initialState(jobId), { type: 'cancelled' });
    this.update(jobId, { status: 'cancelled' });
    return state;
  }

  /**
   * One status answer, no polling.
   * @param {string} jobId
   */
  async status(jobId) {
    const response = await this.fetch(this.url(`/v1/download/jobs/${encodeURIComponent(jobId)}`), {
      headers: { Accept: 'application/json' },
      cache: 'no-store',
    });
    const body = await readJson(response);
    if (!response.ok) throw new DownloadJobsError(response.status, body ?? {});
    return body;
  }

  /**
   * The caller's jobs according to the server, when it offers a listing
   * (`GET /v1/download/jobs`); null when it does not (404/405) or is unreachable.
   * @returns {Promise<object[]|null>}
   */
  async serverJobs() {
    try {
      const response = await this.fetch(this.url('/v1/download/jobs'), {
        headers: { Accept: 'application/json' },
        cache: 'no-store',
      });
      if (!response.ok) return null;
      const body = await readJson(response);
      const items = Array.isArray(body) ? body : (body?.jobs ?? body?.items);
      return Array.isArray(items) ? items : null;
    } catch {
      return null;
    }
  }

  /** Jobs this browser started, newest first. @returns {StoredJob[]} */
  recentJobs() {
    try {
      const parsed = JSON.parse(this.storage.getItem(this.storageKey) ?? '[]');
      return Array.isArray(parsed) ? parsed.filter((job) => job && typeof job.jobId === 'string') : [];
    } catch {
      return [];
    }
  }

  /** The recent jobs not seen to end yet: the ones a refresh resumes. */
  pendingJobs() {
    return this.recentJobs().filter((job) => !isTerminal(job.status));
  }

  /**
   * Record (or update) a job in the recent list.
   * @param {Partial<StoredJob> & {jobId: string}} entry
   */
  remember(entry) {
    const jobs = this.recentJobs();
    const index = jobs.findIndex((job) => job.jobId === entry.jobId);
    if (index >= 0) {
      jobs[index] = { ...jobs[index], ...entry };
    } else {
      jobs.unshift(/** @type {StoredJob} */ ({ fileIds: [], createdAt: new Date(this.now()).toISOString(), status: 'queued', progress: 0, ...entry }));
    }
    this.save(jobs.slice(0, this.maxRecent));
  }

  /**
   * Update a job of the recent list; a job not in it (started elsewhere) is left out.
   * @param {string} jobId
   * @param {Partial<StoredJob>} fields
   */
  update(jobId, fields) {
    const jobs = this.recentJobs();
    const index = jobs.findIndex((job) => job.jobId === jobId);
    if (index < 0) return;
    jobs[index] = { ...jobs[index], ...fields, jobId };
    this.save(jobs);
  }

  /** @param {string} jobId */
  forget(jobId) {
    this.watches.get(jobId)?.stop();
    this.save(this.recentJobs().filter((job) => job.jobId !== jobId));
  }

  /** @param {StoredJob[]} jobs */
  save(jobs) {
    try {
      this.storage.setItem(this.storageKey, JSON.stringify(jobs));
    } catch {
      // Quota or privacy refusal: polling goes on, only refresh-survival is lost.
    }
  }

  /** @param {number} ms */
  sleep(ms) {
    return new Promise((resolve) => this.timers.setTimeout(resolve, ms));
  }
}

/** @param {Response} response */
async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** The polling loop of one job. Internal: use DownloadJobsClient.watch. */
class JobWatch {
  /**
   * @param {DownloadJobsClient} client
   * @param {string} jobId
   * @param {WatchOptions} options
   * @param {StoredJob|undefined} stored
   */
  constructor(client, jobId, options, stored) {
    this.client = client;
    this.jobId = jobId;
    this.mode = options.onComplete ?? 'link';
    this.immediate = options.immediate ?? true;
    /** @type {JobUpdate} */
    // Start from what this browser saw last, but never terminal: the server has the last word.
    this.state = { ...initialState(jobId), status: stored?.status ?? 'queued', progress: stored?.progress ?? 0, terminal: false };
    /** @type {Set<(update: JobUpdate) => void>} */
    this.listeners = new Set();
    this.polls = 0;
    /** @type {string|null} */
    this.etag = null;
    this.lastBody = null;
    this.timer = null;
    /** @type {AbortController|null} */
    this.inflight = null;
    this.stopped = false;
    /** @type {(state: JobUpdate) => void} */
    this.settle = () => {};
    /** @type {Promise<JobUpdate>} */
    this.done = new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  /** @param {(update: JobUpdate) => void} listener @returns {JobHandle} */
  handle(listener) {
    return {
      jobId: this.jobId,
      state: () => this.state,
      cancel: () => this.cancel(),
      stop: () => {
        this.listeners.delete(listener);
        if (this.listeners.size === 0) this.stop();
      },
      done: this.done,
    };
  }

  begin() {
    this.emit();
    this.later(this.immediate ? 0 : this.client.schedule.firstMs);
  }

  /** @param {number} ms */
  later(ms) {
    if (this.stopped) return;
    this.timer = this.client.timers.setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, ms);
  }

  stop() {
    this.stopped = true;
    if (this.timer !== null) this.client.timers.clearTimeout(this.timer);
    this.timer = null;
    this.inflight?.abort();
    this.inflight = null;
    if (this.client.watches.get(this.jobId) === this) this.client.watches.delete(this.jobId);
  }

  async poll() {
    if (this.stopped) return;
    const client = this.client;
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    if (this.etag && this.lastBody) headers['If-None-Match'] = this.etag;
    const controller = new AbortController();
    this.inflight = controller;
    let response;
    let body = null;
    try {
      response = await client.fetch(client.url(`/v1/download/jobs/${encodeURIComponent(this.jobId)}`), {
        headers,
        cache: 'no-store',
        signal: controller.signal,
      });
      if (response.status !== 304) body = await readJson(response);
    } catch {
      if (this.stopped) return;
      this.inflight = null;
      this.apply({ type: 'unreachable' });
      this.later(retryDelay(this.state.retryAttempt, client.schedule, client.random));
      return;
    }
    this.inflight = null;
    if (this.stopped) return;
    const hinted = parseRetryAfter(response.headers.get('Retry-After'), client.now());
    const retryAfter = hinted ?? 0;

    if (response.status === 304 && this.lastBody) {
      body = this.lastBody;
    } else if (response.ok && body) {
      this.etag = response.headers.get('ETag');
      this.lastBody = body;
    } else if (response.status === 404) {
      this.apply({ type: 'gone' });
      return;
    } else if (response.status === 429) {
      this.apply({ type: 'throttled' });
      this.later(Math.max(retryAfter, retryDelay(this.state.retryAttempt, client.schedule, client.random)));
      return;
    } else if (response.status >= 500 || response.ok) {
      // 5xx, or a 2xx whose body did not parse (a proxy's error page): transient.
      this.apply({ type: 'unreachable' });
      this.later(Math.max(retryAfter, retryDelay(this.state.retryAttempt, client.schedule, client.random)));
      return;
    } else {
      this.apply({
        type: 'refused',
        error: { reason: body?.error ?? `HTTP${response.status}`, message: body?.message ?? `HTTP ${response.status}` },
      });
      return;
    }

    this.apply({ type: 'answer', body });
    if (this.state.terminal) return;
    this.polls += 1;
    this.later(nextPoll(this.polls, hinted, client.schedule));
  }

  /** @returns {Promise<JobUpdate>} */
  async cancel() {
    if (this.state.terminal) return this.state;
    this.stop();
    const client = this.client;
    let response;
    try {
      response = await client.fetch(client.url(`/v1/download/jobs/${encodeURIComponent(this.jobId)}`), {
        method: 'DELETE',
        headers: { Accept: 'application/json' },
      });
    } catch (error) {
      this.restart();
      throw error;
    }
    const body = await readJson(response);
    if (response.status === 409) {
      // Too late: it finished meanwhile. One look tells how.
      try {
        this.apply({ type: 'answer', body: await client.status(this.jobId) });
      } catch {
        this.restart();
      }
      return this.state;
    }
    if (response.status === 404) {
      this.apply({ type: 'gone' });
      return this.state;
    }
    if (!response.ok) {
      this.restart();
      throw new DownloadJobsError(response.status, body ?? {});
    }
    this.apply({ type: 'cancelled' });
    return this.state;
  }

  /** Go back to polling after a cancel that did not go through. */
  restart() {
    this.stopped = false;
    this.client.watches.set(this.jobId, this);
    this.later(0);
  }

  /** @param {{type: string, body?: any, error?: JobError}} event */
  apply(event) {
    const before = this.state;
    this.state = reduce(before, event);
    if (this.state === before) return;
    this.client.update(this.jobId, { status: this.state.status, progress: this.state.progress });
    if (this.state.terminal) {
      this.stop();
      if (this.state.status === 'completed' && this.mode === 'download' && this.state.downloadUrl) {
        this.client.navigate(this.state.downloadUrl);
      }
    }
    this.emit();
    if (this.state.terminal) this.settle(this.state);
  }

  emit() {
    for (const listener of [...this.listeners]) {
      try {
        listener(this.state);
      } catch (error) {
        // A broken UI callback must not stop the polling of the job.
        globalThis.console?.error?.(error);
      }
    }
  }
}
